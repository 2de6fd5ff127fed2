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

import json
import math
from collections.abc import Mapping, Sequence
from types import NoneType
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


_PLAIN = frozenset({str, int, NoneType})
_CACHED = frozenset({str, int})  # values whose JSON fragment is cached per feature (categories, counts)


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
        self._heads: list[str] | None = None
        self._tails: list[str] | None = None
        self._value_json: list[dict[Any, str]] = [{} for _ in self.input_names]

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
        n, k = order.shape
        if n == 0 or k == 0:
            return [[] for _ in range(n)]
        # Gathered as whole arrays, then one dict per reason: no per-row numpy calls.
        table = np.empty((len(self.input_names), n), dtype=object)
        for i, name in enumerate(self.input_names):
            table[i, :] = list(values[name])
        rows = np.arange(n)[:, None]
        chosen_values = table[order, rows].tolist()
        chosen_contributions = np.take_along_axis(contributions, order, axis=1).tolist()
        names = np.array(self.input_names, dtype=object)[order].tolist()
        phrases = np.array(self.phrases, dtype=object)[order].tolist()
        plain = _PLAIN
        return [
            [
                {
                    "feature": name,
                    "value": value if type(value) in plain else _plain(value),
                    "contribution": contribution,
                    "phrase": text,
                }
                for name, value, contribution, text, ok in zip(ns, vs, cs, ps, ks, strict=True)
                if ok
            ]
            for ns, vs, cs, ps, ks in zip(
                names, chosen_values, chosen_contributions, phrases, keep.tolist(), strict=True
            )
        ]

    def reasons_json(
        self,
        contributions: np.ndarray,
        towards_positive: Sequence[bool] | np.ndarray,
        values: Mapping[str, Sequence[Any]],
    ) -> list[bytes]:
        """The same reasons as ``reasons``, each record's list as JSON text (what the service answers and
        logs). Assembled from per-feature fragments: building and serialising 4,000 dicts for a 1,000-record
        batch cost more than scoring and explaining it."""
        contributions = np.asarray(contributions, dtype=np.float64)
        order, keep = self.select(contributions, np.asarray(towards_positive, dtype=bool))
        n, k = order.shape
        if n == 0 or k == 0:
            return [b"[]"] * n
        heads, tails = self._fragments()
        columns = [values[name] for name in self.input_names]
        chosen = np.take_along_axis(contributions, order, axis=1).ravel().tolist()
        numbers = json.dumps(chosen)[1:-1].split(", ")  # every float's JSON text in one C call
        caches = self._value_json  # per input: value -> '{"feature":..,"value":..,"contribution":'
        out: list[bytes] = []
        at = 0
        for row, (indexes, kept) in enumerate(zip(order.tolist(), keep.tolist(), strict=True)):
            parts = []
            for i, ok in zip(indexes, kept, strict=True):
                if ok:
                    value = columns[i][row]
                    cache = caches[i]
                    head = cache.get(value) if type(value) in _CACHED else None
                    if head is None:
                        head = heads[i] + _json_value(value) + ',"contribution":'
                        if type(value) in _CACHED and len(cache) < 1_000:
                            cache[value] = head
                    parts.append(head + numbers[at] + tails[i])
                at += 1
            out.append(("[" + ",".join(parts) + "]").encode())
        return out

    def _fragments(self) -> tuple[list[str], list[str]]:
        if self._heads is None:
            self._heads = ['{"feature":' + json.dumps(name) + ',"value":' for name in self.input_names]
            self._tails = [',"phrase":' + json.dumps(text) + "}" for text in self.phrases]
        return self._heads, self._tails  # type: ignore[return-value]


def _json_value(value: Any) -> str:
    """A value's JSON text; a non-finite number becomes ``null`` (JSON has no NaN)."""
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    return json.dumps(value)
