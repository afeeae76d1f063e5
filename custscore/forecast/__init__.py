"""Demand forecasting: series from events, forecasting families, rolling-origin backtests, stock cover.

``series`` builds a :class:`~custscore.forecast.series.Panel` (one row per
product, category, store or crossing; zero-filled periods; outliers clipped),
``families`` holds the forecasters, ``backtest`` scores them and picks one,
``production`` writes the ``forecasts`` collection, ``stock`` turns forecasts
and on-hand stock into days of cover and a reorder list.
"""
