"""Counterfactual hints: per record, the smallest change of one input, within the contract, that turns
its decision.

A hint names one input the person can act on, the value the contract allows that it would take, and
the model's probability and decision with that value, every other input unchanged. Inputs that are
``immutable``, ``sensitive`` or ``identifying`` in ``features/features.yaml`` are never suggested.
For each other model input, the closest value that turns the decision is searched:

- a numeric input with both ``min`` and ``max`` declared: ``GRID`` evenly spaced values across the
  range are scored; in each direction from the record's value, the nearest that turns the decision is
  then moved back towards the record's value by bisection against the nearest that does not (to a
  whole number for an ``int``, to ``FLOAT_RESOLUTION`` of the range for a ``float``). Every suggested
  value was scored by the model itself and turns the decision. Where the score is not monotone between
  two grid values (a tree can jump), a closer turning value between them can be missed. A numeric
  input without both ends declared, or whose value is missing or outside them, gets no hint: there is
  no range to respect.
- a category: every other allowed value; of those that turn the decision, the one whose probability
  lies furthest past the threshold.

Hints are ranked by effort: a numeric change's share of its input's range (``|change| / (max - min)``);
a category change counts 1 (as much as a whole range); ties by how far past the threshold the new
probability lies. A record gets at most ``top_k`` hints, one per input; one that no single change
turns gets none, with the reason (``RecordHints.unavailable``). Computing hints never fails a
record: an error becomes its reason.

The scores are the scorer's own (``Scorer.column_probabilities``); each hint's probability is scored
again on the changed record alone, so it is what ``/predict`` answers for it, to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from german_credit_scoring.contract import FeatureDefinition
from german_credit_scoring.explain.reasons import json_plain, phrase

GRID = 17  # values scored across a numeric input's range before the bisection
FLOAT_RESOLUTION = 1e-4  # a float input's bisection stops within this share of its range
CHUNK = 50_000  # candidate records per scoring call (bounds the model matrix)
CATEGORY_EFFORT = 1.0

NONE_TURNS = "no counterfactual hint: no change of one input within the contract turns the decision"
NOTHING_TO_CHANGE = (
    "no counterfactual hint: every model input is immutable, sensitive, identifying or has no declared range"
)


@dataclass(frozen=True)
class Hint:
    """One input changed: its value now, the value suggested, and the model's answer with it."""

    feature: str
    value: Any
    suggested: Any
    probability: float
    decision: str
    effort: float  # share of the input's range moved; 1 for a category
    phrase: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": self.value,
            "suggested": self.suggested,
            "probability": self.probability,
            "decision": self.decision,
            "effort": self.effort,
            "phrase": self.phrase,
        }


@dataclass(frozen=True)
class RecordHints:
    """A record's hints, best first, or why it has none."""

    hints: list[Hint]
    unavailable: str | None = None

    def as_dicts(self) -> list[dict[str, Any]]:
        return [hint.as_dict() for hint in self.hints]


def changeable(feature: FeatureDefinition) -> str | None:
    """Why a hint may not change this input, or ``None`` when it may."""
    if feature.immutable:
        return "immutable"
    if feature.sensitive:
        return "sensitive"
    if feature.identifying:
        return "identifying"
    if feature.is_numeric:
        if feature.min is None or feature.max is None or not feature.max > feature.min:
            return "no declared range (min and max)"
        return None
    if not feature.allowed_values or len(feature.allowed_values) < 2:
        return "fewer than two allowed values"
    return None


def grid_values(feature: FeatureDefinition) -> list[float]:
    """The values scored first across a numeric input's range (whole numbers for an ``int``)."""
    low, high = float(feature.min), float(feature.max)  # type: ignore[arg-type]
    values = np.linspace(low, high, GRID)
    if feature.dtype == "int":
        low_int, high_int = math.ceil(low), math.floor(high)
        values = np.clip(np.round(values), low_int, high_int)
    return sorted({float(v) for v in values})


class Counterfactuals:
    """Counterfactual hints of a ``lifecycle.scoring.Scorer`` (module docstring)."""

    def __init__(self, scorer: Any, top_k: int, hints_for: str = "positive") -> None:
        if hints_for not in ("positive", "negative", "any"):
            raise ValueError(f"hints_for must be positive, negative or any, got {hints_for!r}")
        self.scorer = scorer
        self.top_k = int(top_k)
        self.hints_for = hints_for
        self.names = list(scorer.input_names)
        self.numeric: list[FeatureDefinition] = []
        self.categorical: list[FeatureDefinition] = []
        self.excluded: dict[str, str] = {}  # input -> why no hint changes it
        for name in self.names:
            feature = scorer.features.get(name)
            why = changeable(feature)
            if why is not None:
                self.excluded[name] = why
            elif feature.is_numeric:
                self.numeric.append(feature)
            else:
                self.categorical.append(feature)
        self._grids = {f.name: grid_values(f) for f in self.numeric}
        self._phrases = {f.name: phrase(f) for f in (*self.numeric, *self.categorical)}

    def wanted(self, decision: str) -> bool:
        """Whether a record with this decision gets hints (``serving.hints_for``)."""
        if self.hints_for == "any":
            return True
        positive = decision == self.scorer.positive_label
        return positive if self.hints_for == "positive" else not positive

    def out_of_scope(self) -> str:
        """The reason given to a record whose decision gets no hints."""
        label = self.scorer.positive_label if self.hints_for == "positive" else self.scorer.negative_label
        return f"no counterfactual hint: hints are given for records decided as {label!r} (serving.hints_for)"

    def hints(
        self,
        columns: Mapping[str, Sequence[Any]],
        probabilities: Sequence[float],
        decisions: Sequence[str],
    ) -> list[RecordHints | None]:
        """Each record's hints (``None`` where its decision gets none, ``wanted``). Never raises."""
        rows = [i for i, decision in enumerate(decisions) if self.wanted(decision)]
        out: list[RecordHints | None] = [None] * len(decisions)
        if not rows:
            return out
        if self.top_k <= 0:
            for row in rows:
                out[row] = RecordHints([], "no counterfactual hint: hints are off (serving.hints_top_k is 0)")
            return out
        if not self.numeric and not self.categorical:
            for row in rows:
                out[row] = RecordHints([], NOTHING_TO_CHANGE)
            return out
        try:
            found = self._search(columns, probabilities, rows)
        except Exception as error:  # a hint is a courtesy: the decision stands without it
            for row in rows:
                out[row] = RecordHints([], f"no counterfactual hint: {error}")
            return out
        for row in rows:
            hints = sorted(found.get(row, []), key=lambda h: (h.effort, -self._past(h)))[: self.top_k]
            out[row] = RecordHints(hints, None if hints else NONE_TURNS)
        return out

    # -- the search ---------------------------------------------------------------------------------

    def _past(self, hint: Hint) -> float:
        """How far past the threshold a hint's probability lies, on the side of its new decision."""
        threshold = self.scorer.threshold
        if hint.decision == self.scorer.positive_label:
            return hint.probability - threshold
        return threshold - hint.probability

    def _search(
        self, columns: Mapping[str, Sequence[Any]], probabilities: Sequence[float], rows: list[int]
    ) -> dict[int, list[Hint]]:
        threshold = self.scorer.threshold
        base = {name: np.array(list(columns[name]), dtype=object) for name in self.names}
        positive = {row: float(probabilities[row]) >= threshold for row in rows}
        found: dict[int, list[Hint]] = {}

        def turns(row: int, probability: float) -> bool:
            return (probability >= threshold) != positive[row]

        def add(row: int, feature: FeatureDefinition, suggested: Any, probability: float, effort: float):
            decision = self._decision(probability)
            value = columns[feature.name][row]
            found.setdefault(row, []).append(
                Hint(
                    feature=feature.name,
                    value=json_plain(value),
                    suggested=suggested,
                    probability=float(probability),
                    decision=decision,
                    effort=float(effort),
                    phrase=self._phrases[feature.name],
                )
            )

        # Categories: every other allowed value, in one scoring pass with the numeric grids.
        candidates: list[tuple[int, str, Any]] = []
        for feature in self.categorical:
            for row in rows:
                current = columns[feature.name][row]
                candidates += [(row, feature.name, v) for v in feature.allowed_values or [] if v != current]
        # Numeric grids: every grid value but the record's own, for records within the range.
        spans: list[tuple[int, FeatureDefinition, float]] = []
        for feature in self.numeric:
            for row in rows:
                current = columns[feature.name][row]
                if not _finite(current) or not feature.min <= float(current) <= feature.max:  # type: ignore[operator]
                    continue
                spans.append((row, feature, float(current)))
                candidates += [
                    (row, feature.name, v) for v in self._grids[feature.name] if v != float(current)
                ]
        scored = dict(zip(candidates, self._score(base, candidates), strict=True))

        for feature in self.categorical:
            for row in rows:
                current = columns[feature.name][row]
                turning = [
                    (v, scored[(row, feature.name, v)])
                    for v in feature.allowed_values or []
                    if v != current and turns(row, scored[(row, feature.name, v)])
                ]
                if turning:
                    sign = -1.0 if positive[row] else 1.0
                    value, probability = max(turning, key=lambda item: sign * (item[1] - threshold))
                    add(row, feature, value, probability, CATEGORY_EFFORT)

        # Per record, input and direction: the nearest grid value that turns (hi) and the nearest that
        # does not (lo, the record's own value at first); bisection closes the gap.
        pending: list[list[Any]] = []  # [row, feature, current, lo, hi, probability at hi]
        for row, feature, current in spans:
            grid = self._grids[feature.name]
            for direction in (1.0, -1.0):
                lo = current
                for v in sorted(
                    (v for v in grid if (v - current) * direction > 0), key=lambda v: abs(v - current)
                ):
                    probability = scored[(row, feature.name, v)]
                    if turns(row, probability):
                        pending.append([row, feature, current, lo, v, probability])
                        break
                    lo = v
        while True:
            active = [item for item in pending if not self._close(item[1], item[3], item[4])]
            if not active:
                break
            mids = [self._middle(item[1], item[3], item[4]) for item in active]
            probabilities_mid = self._score(
                base, [(item[0], item[1].name, mid) for item, mid in zip(active, mids, strict=True)]
            )
            for item, mid, probability in zip(active, mids, probabilities_mid, strict=True):
                if turns(item[0], probability):
                    item[4], item[5] = mid, probability
                else:
                    item[3] = mid

        best: dict[tuple[int, str], list[Any]] = {}
        for item in pending:
            key = (item[0], item[1].name)
            if key not in best or abs(item[4] - item[2]) < abs(best[key][4] - best[key][2]):
                best[key] = item
        for row, feature, current, _, hi, probability in best.values():
            suggested = int(hi) if feature.dtype == "int" else float(hi)
            effort = abs(hi - current) / (float(feature.max) - float(feature.min))  # type: ignore[arg-type]
            add(row, feature, suggested, probability, effort)
        # Each hint scored again as a record of its own, as /predict scores it: a batch's matrix product
        # can differ from one record's in the last bits (BLAS), and the answer must be /predict's.
        for row, hints in found.items():
            again = [(hint, self._score(base, [(row, hint.feature, hint.suggested)])[0]) for hint in hints]
            found[row] = [
                replace(hint, probability=p, decision=self._decision(p)) for hint, p in again if turns(row, p)
            ]
        return found

    def _decision(self, probability: float) -> str:
        scorer = self.scorer
        return scorer.positive_label if probability >= scorer.threshold else scorer.negative_label

    @staticmethod
    def _close(feature: FeatureDefinition, lo: float, hi: float) -> bool:
        gap = abs(hi - lo)
        if feature.dtype == "int":
            return gap <= 1
        return gap <= FLOAT_RESOLUTION * (float(feature.max) - float(feature.min))  # type: ignore[arg-type]

    @staticmethod
    def _middle(feature: FeatureDefinition, lo: float, hi: float) -> float:
        middle = (lo + hi) / 2.0
        if feature.dtype == "int":  # strictly between two whole numbers at least 2 apart
            return float(math.floor(middle) if hi > lo else math.ceil(middle))
        return middle

    def _score(
        self, base: Mapping[str, np.ndarray], candidates: Sequence[tuple[int, str, Any]]
    ) -> list[float]:
        """The probability of each candidate: record ``row`` with input ``name`` set to ``value``."""
        out: list[float] = []
        for start in range(0, len(candidates), CHUNK):
            part = candidates[start : start + CHUNK]
            rows = np.fromiter((c[0] for c in part), dtype=np.intp, count=len(part))
            changed = np.array([c[1] for c in part], dtype=object)
            values = np.empty(len(part), dtype=object)
            values[:] = [c[2] for c in part]
            columns: dict[str, list[Any]] = {}
            for name, column in base.items():
                taken = column[rows]
                where = changed == name
                if where.any():
                    replacement = values[where]
                    if self.scorer.features.get(name).dtype == "int":
                        replacement = np.array([int(v) for v in replacement], dtype=object)
                    taken[where] = replacement
                columns[name] = taken.tolist()
            out += np.asarray(self.scorer.column_probabilities(columns), dtype=np.float64).tolist()
        return out


def _finite(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
