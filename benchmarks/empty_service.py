"""The framework's floor: a BentoML 1.4 service that does nothing but answer.

``bentoml serve benchmarks.empty_service:EmptyService`` from the project root. Same shape of request
and answer as the scoring service's ``/predict`` (a JSON object in, a small JSON object out), the same
worker and traffic settings, no validation, model or log: the serving benchmark runs it beside the real
service, with the same client, so the overhead of the scoring path is measured as a difference.
"""

from __future__ import annotations

from typing import Any

import bentoml


@bentoml.service(
    name="empty_service",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 64},
    resources={"cpu": "1", "memory": "512Mi"},
)
class EmptyService:
    @bentoml.api
    def predict(self, record: dict[str, Any]) -> dict[str, Any]:
        """Answer a constant: the cost of BentoML's HTTP, routing and JSON handling alone."""
        return {"decision": "none", "probability": 0.0}
