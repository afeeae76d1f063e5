"""Named aggregation pipelines, EDA figures and the HTML report."""
