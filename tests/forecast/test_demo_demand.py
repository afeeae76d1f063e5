"""The demo trains demand too: step 3 ends with the demand leaderboard and writes forecasts."""

from __future__ import annotations

from types import SimpleNamespace

from custscore.demo import DemoOptions, train_every_task
from custscore.forecast.production import FORECASTS
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store


class RecordingUI:
    def __init__(self):
        self.bars: list[tuple[str, int, int]] = []

    def progress(self, what, done, total):
        self.bars.append((what, done, total))


def test_the_demos_training_step_ends_with_demand_forecasts(settings, monkeypatch, capsys):
    import custscore.models.train as customer_tasks
    import custscore.recommend.train as recommend_train

    # the customer tasks and recommendations have their own tests; here they stand aside so demand runs for real
    monkeypatch.setattr(customer_tasks, "train", lambda *a, **k: [SimpleNamespace(kind="classification")])
    monkeypatch.setattr(recommend_train, "train_recommender", lambda *a, **k: SimpleNamespace(kind="ranking"))
    ui = RecordingUI()
    with open_store(settings) as store:
        run_simulation(store, SimulationConfig(n_customers=300, seed=7), replace=True)
        results = train_every_task(store, settings, DemoOptions(customers=300, cv=2), ui)
        stored = store.collection(FORECASTS).count({"version": results[-1].version})

    assert [r.kind for r in results] == ["classification", "ranking", "forecast"]
    demand = results[-1]
    assert demand.by == ("category",) and demand.freq == "D" and demand.series >= 3
    assert stored == demand.written == demand.series * 28
    assert ui.bars[0] == ("demand: backtest seasonal_naive", 1, len(ui.bars))
    assert ui.bars[-1][1:] == (len(ui.bars), len(ui.bars))

    from custscore.cli.demo import RichDemoUI

    RichDemoUI().training([demand])
    shown = capsys.readouterr().out
    assert "demand leaderboard (3 rolling-origin windows of 28 x D;" in shown
    assert f"forecasts written as {demand.version}" in shown
