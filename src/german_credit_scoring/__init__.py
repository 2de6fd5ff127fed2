"""GitOps MLOps project: the library behind the pipeline stages, the service and the workflows.

Importing this package is cheap on purpose: heavy libraries (mlflow, great_expectations, bentoml)
are imported inside the functions that need them.
"""

__version__ = "0.1.0"
