"""Recommendation commands: recommend CUSTOMER_ID, similar PRODUCT_ID (training lives in ``train --task recommend``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from custscore.cli.common import (
    AsOfOpt,
    app,
    cell,
    command_clock,
    console,
    opened_store,
    print_tradeoffs_and_notes,
    simple_table,
    user_errors,
)
from custscore.cli.leaderboards import print_leaderboard
from custscore.config import Settings


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
    print_leaderboard(board, "recommend", "ranking", result.winner)
    if result.ratings is not None:
        cols = ("model", "rmse", "mae", "rmse_std", "fit_s")
        console.print(simple_table(f"rating models ({int(result.ratings['ratings'].iloc[0]):,} ratings, K-fold CV)",
                                   cols, ([cell(row[c]) for c in cols] for row in result.ratings.to_dict("records")),
                                   right=cols[1:]))
    print_tradeoffs_and_notes(board, result.notes)
    if result.version:
        console.print(f"  winner [bold green]{result.winner}[/] registered as recommend {result.version}")


HowManyOpt = Annotated[int, typer.Option("--n", help="How many products.")]


@app.command()
def recommend(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The customer to recommend to.")],
    n: HowManyOpt = 10,
    as_of: AsOfOpt = None,
) -> None:
    """Recommend products to one customer from their purchases up to the as-of date, with a reason for each.

    Example: custscore recommend C0000042 --n 5 --as-of 2026-06-30
    """

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
        now = command_clock(ctx, as_of).now()
        recs = rec.recommend([customer_id], read_events(store, [customer_id], until=now),
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
