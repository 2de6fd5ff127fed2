"""Production monitoring: the prediction-log store, drift windows, outcomes and retraining triggers.

- ``store``    ships closed log partitions to the store (a folder or an fsspec URL), enforces retention
  and reads a window of days back.
- ``window``   materialises the drift check's window (``data/current/``) with the reference of the
  model version that produced it (``lineage``).
- ``labels``   ingests outcome files, joins them with logged predictions and measures production
  performance and fairness with confidence intervals.
- ``triggers`` turns drift, performance, fairness, label volume and model age into one typed report.
"""
