"""Recommendation commands: recommend CUSTOMER_ID, similar PRODUCT_ID (training lives in ``train --task recommend``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from custscore.cli.common import (
    app,
    cell,
    console,
    fitted_table,
    opened_store,
    print_fitted,
    print_tradeoffs_and_notes,
    simple_table,
    user_errors,
)
from custscore.cli.leaderboards import WINNER
from custscore.config import Settings

BOARD_COLUMNS = ["model", "val_ndcg@10", "cv_std", "test_precision@10", "test_recall@10", "test_ndcg@10",
                 "test_map@10", "test_hit_rate@10", "test_coverage", "test_mean_popularity", "fit_s",
                 "recommend_ms_1k"]


def train_recommendations(store: Any, settings: Settings, seed: int = 0, promote: bool = True,
                          repeatable: tuple[str, ...] | None = None, progress: Any = None):
    """Train the recommenders (with the simulator's oracle row when the data is simulated)."""
    from custscore.recommend.train import RecommendOptions, train_recommender
    from custscore.simulator.products import oracle_scores

    options = RecommendOptions(seed=seed, promote=promote, repeatable=repeatable)
    return train_recommender(store, settings, options, oracle_scores=oracle_scores, progress=progress)


def render_recommend_leaderboard(result: Any) -> None:
    """The ranking leaderboard, the rating models' table and the notes."""
    board = result.leaderboard
    cols = [c for c in BOARD_COLUMNS if c in board.columns]
    headers = [c.replace("test_", "").replace("val_", "val ") for c in cols]
    records = board.to_dict("records")
    rows = [[cell(row.get(c)) + (WINNER if c == "model" and row["model"] == result.winner else "") for c in cols]
            for row in records]
    styles = ["bold green" if row["model"] == result.winner else ("dim" if row["model"] == "oracle" else None)
              for row in records]
    print_fitted(*fitted_table("recommend leaderboard (NDCG@10 etc. on each customer's last 20% of purchases; the "
                               "winner is picked on validation customers, test customers are reported)", headers, rows,
                               right=set(headers) - {"model"}, styles=styles))
    if result.ratings is not None:
        rt = Table(title=f"rating models ({int(result.ratings['ratings'].iloc[0]):,} ratings, K-fold CV)")
        for c in ("model", "rmse", "mae", "rmse_std", "fit_s"):
            rt.add_column(c, justify="left" if c == "model" else "right")
        for row in result.ratings.to_dict("records"):
            rt.add_row(*(cell(row[c]) for c in ("model", "rmse", "mae", "rmse_std", "fit_s")))
        console.print(rt)
    print_tradeoffs_and_notes(board, result.notes)
    if result.version:
        console.print(f"  winner [bold green]{result.winner}[/] registered as recommend {result.version}")


HowManyOpt = Annotated[int, typer.Option("--n", help="How many products.")]


@app.command()
def recommend(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The customer to recommend to.")],
    n: HowManyOpt = 10,
) -> None:
    """Recommend products to one customer from their purchases so far, with a reason for each.

    Example: custscore recommend C0000042 --n 5
    """
    import datetime as dt

    from custscore.errors import InputError
    from custscore.recommend.interactions import read_events, segment_of
    from custscore.recommend.train import load_recommender
    from custscore.store.schema import CUSTOMERS

    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        doc = store[CUSTOMERS].find_one({"_id": customer_id}, {"age": 1, "channel": 1})
        if doc is None:
            raise InputError(f"customer_id={customer_id!r} is not in the store; check the id "
                             "(custscore query '{}' --fields _id)")
        rec = load_recommender(store, settings)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        recs = rec.recommend([customer_id], read_events(store, [customer_id]),
                             {customer_id: segment_of(doc.get("age"), doc.get("channel"))}, now, n=n)[customer_id]
    console.print(simple_table(f"recommendations for {customer_id}", ("#", "product", "score", "reason"),
                               ((i, r["product_id"], f"{r['score']:.4f}", r["reason"]) for i, r in enumerate(recs, 1)),
                               right=("#", "score")))


@app.command()
def similar(
    ctx: typer.Context,
    product_id: Annotated[str, typer.Argument(help="A product id from the events.")],
    n: HowManyOpt = 10,
) -> None:
    """Products most often bought by the same customers (item-item cosine of the production recommender).

    Example: custscore similar grocery-0001 --n 5
    """
    from custscore.recommend.train import load_recommender

    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        rows = load_recommender(store, settings).similar(product_id, n)
    console.print(simple_table(f"products similar to {product_id}", ("#", "product", "category", "similarity"),
                               ((i, r["product_id"], r["category"], f"{r['similarity']:.4f}")
                                for i, r in enumerate(rows, 1)), right=("#", "similarity")))
