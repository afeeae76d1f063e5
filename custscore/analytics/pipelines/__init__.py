"""Named, documented aggregation pipelines that turn customers and events into group statistics.

``list_pipelines()`` describes them, ``build_pipeline(name, by, **options)``
returns the stages, ``run_pipeline(store, name, by, **options)`` runs one and
returns a pandas DataFrame whose columns are listed in ``PipelineInfo.columns``.

======================  ===========  ==========================================
name                    collection   by / options
======================  ===========  ==========================================
satisfaction_by_age     customers
satisfaction_by_income  customers
satisfaction_by_group   customers    by: region (default), channel
churn_by_group          customers    by: region (default), channel, age_bucket
score_distribution      customers
rfm                     events       reference (default: latest event ts)
monthly_revenue         events
cohort_retention        events       (+ cohort sizes from customers)
top_categories          events       limit (default 10, 0 = all)
top_products            events       limit (default 10, 0 = all)
======================  ===========  ==========================================

Churn labels: on simulated data a customer churned when ``_truth.churned_at``
is not null, i.e. at any time up to the simulation's end (this includes
customers who churned before the event window). On user data without
``_truth``, a truthy ``label_churn`` field is used when present; otherwise
``churn_by_group`` returns an empty frame and logs a warning saying how to add
labels. ``frame.attrs["label_source"]`` names the label used.
"""

from custscore.analytics.pipelines.common import PipelineInfo
from custscore.analytics.pipelines.registry import (
    build_pipeline,
    get_pipeline,
    list_pipelines,
    run_pipeline,
    stats_tables,
)

__all__ = ["PipelineInfo", "build_pipeline", "get_pipeline", "list_pipelines", "run_pipeline", "stats_tables"]
