"""Reason codes: the top-k contributions behind each decision, with a human phrase per feature.

A record's reasons are the features that pushed its score most **towards its decision**: for a
record decided as the positive label (the class the model scores, e.g. ``bad``), the largest positive
contributions to the log-odds; for the other decision, the most negative ones. Only contributions
that point that way are reasons, so a record may get fewer than ``k``. Sensitive (protected) features
are never reasons, even when ``data.use_protected_as_features`` lets the model use them.

The phrase of a feature is its ``reason`` in ``features/features.yaml``, else its ``description``,
else its name made readable (``duration_months`` -> ``Duration months``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from german_credit_scoring.contract import FeatureDefinition, FeatureSet


def phrase(feature: FeatureDefinition) -> str:
    """The human phrase of a feature (module docstring)."""
    text = (getattr(feature, "reason", "") or feature.description or "").strip()
    if text:
        return text
    words = " ".join(feature.name.replace("-", " ").replace("_", " ").split())
    return words[:1].upper() + words[1:]


def _plain(value: Any) -> Any:
    """A JSON-friendly value (numpy scalars and NaN become Python values and ``None``)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


class ReasonCodes:
    """Turns contributions ``(n, inputs)`` into each record's top-k reasons."""

    def __init__(self, features: FeatureSet, input_names: Sequence[str], top_k: int) -> None:
        self.input_names = list(input_names)
        self.top_k = int(top_k)
        definitions = [features.get(name) for name in self.input_names]
        self.phrases = [phrase(f) for f in definitions]
        self.eligible = np.array([not f.sensitive for f in definitions], dtype=bool)

    def select(
        self, contributions: np.ndarray, towards_positive: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(order (n, k), keep (n, k))``: the chosen input indexes per record, strongest first."""
        contributions = np.asarray(contributions, dtype=np.float64)
        k = min(self.top_k, contributions.shape[1])
        signed = np.where(np.asarray(towards_positive, dtype=bool)[:, None], contributions, -contributions)
        signed = np.where(self.eligible, signed, -np.inf)
        if k <= 0:
            empty = np.zeros((contributions.shape[0], 0), dtype=np.intp)
            return empty, empty.astype(bool)
        if k < signed.shape[1]:
            top = np.argpartition(-signed, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(signed.shape[1]), (signed.shape[0], 1))
        ranked = np.take_along_axis(signed, top, axis=1)
        order = np.take_along_axis(top, np.argsort(-ranked, axis=1, kind="stable"), axis=1)
        keep = np.take_along_axis(signed, order, axis=1) > 0
        return order, keep

    def reasons(
        self,
        contributions: np.ndarray,
        towards_positive: Sequence[bool] | np.ndarray,
        values: Mapping[str, Sequence[Any]],
    ) -> list[list[dict[str, Any]]]:
        """Each record's reasons: ``{"feature", "value", "contribution", "phrase"}``, strongest first.

        ``values`` holds the records' inputs column-wise (``{feature name: values}``).
        """
        contributions = np.asarray(contributions, dtype=np.float64)
        order, keep = self.select(contributions, np.asarray(towards_positive, dtype=bool))
        names, phrases = self.input_names, self.phrases
        out: list[list[dict[str, Any]]] = []
        for row, (chosen, kept) in enumerate(zip(order.tolist(), keep.tolist(), strict=True)):
            out.append(
                [
                    {
                        "feature": names[i],
                        "value": _plain(values[names[i]][row]),
                        "contribution": float(contributions[row, i]),
                        "phrase": phrases[i],
                    }
                    for i, ok in zip(chosen, kept, strict=True)
                    if ok
                ]
            )
        return out
