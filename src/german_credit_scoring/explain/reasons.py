"""Reason codes: the top-k contributions behind each decision, with a human phrase per feature.

A record's reasons are the features that pushed its score most **towards its decision**: for a
record decided as the positive label (the class the model scores, e.g. ``bad``), the largest positive
contributions to the log-odds; for the other decision, the most negative ones. Only contributions
that point that way are reasons, so a record may get fewer than ``k``. Sensitive (protected) features
are never reasons, even when ``data.use_protected_as_features`` lets the model use them.

A contribution is given to 9 decimals (``DECIMALS``, 1e-9 log-odds, far below the 1e-6 the
contributions are exact to), the same in the dicts and in the JSON text.

The phrase of a feature is its ``reason`` in ``features/features.yaml``, else its ``description``,
else its name made readable (``duration_months`` -> ``Duration months``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from operator import itemgetter
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


def json_plain(value: Any) -> Any:
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

    def __init__(
        self, features: FeatureSet, input_names: Sequence[str], top_k: int, compiled: bool = False
    ) -> None:
        """``compiled``: choose the reasons and write their JSON text with ``explain.kernels`` when numba is
        there (importing it costs ~1.3 s: for models whose explainer loads it anyway)."""
        self.input_names = list(input_names)
        self.top_k = int(top_k)
        definitions = [features.get(name) for name in self.input_names]
        self.phrases = [phrase(f) for f in definitions]
        self.eligible = np.array([not f.sensitive for f in definitions], dtype=bool)
        self._heads: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._kernels: Any = None
        if compiled:
            from german_credit_scoring.explain import kernels

            if kernels.reason_text is not None and kernels.top_k is not None:
                self._kernels = kernels
                # each category's JSON text, per input with allowed values (any other value: json.dumps)
                self._category_texts = [
                    {value: json.dumps(value) for value in f.allowed_values} if f.allowed_values else None
                    for f in definitions
                ]
                first, rest, tails = self._fragments()
                pieces = [text for trio in zip(first, rest, tails, strict=True) for text in trio]
                encoded = [text.encode() for text in [*pieces, _POSITIVE.item()]]
                self._fragment_bytes = np.frombuffer(bytearray(b"".join(encoded)), dtype=np.uint8)
                self._fragment_bounds = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)

    @property
    def compiled(self) -> bool:
        """Whether large batches' JSON text is written by the compiled loop (``kernels.reason_text``)."""
        return self._kernels is not None

    def select(
        self, contributions: np.ndarray, towards_positive: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(order (n, k), keep (n, k))``: per record the eligible inputs whose contributions point most
        towards its decision, strongest first (ties: the lower input index first), and which of them
        are reasons (those > 0). By the compiled loop (``kernels.top_k``) when ``compiled``."""
        contributions = np.asarray(contributions, dtype=np.float64)
        towards = np.asarray(towards_positive, dtype=bool)
        n = contributions.shape[0]
        k = min(self.top_k, contributions.shape[1])
        if k <= 0:
            empty = np.zeros((n, 0), dtype=np.intp)
            return empty, empty.astype(bool)
        if self._kernels is not None:
            order = np.empty((n, k), dtype=np.intp)
            keep = np.empty((n, k), dtype=bool)
            self._kernels.top_k(contributions, np.ascontiguousarray(towards), self.eligible, order, keep)
            return order, keep
        signed = np.where(towards[:, None], contributions, -contributions)
        signed = np.where(self.eligible, signed, -np.inf)
        order = np.argsort(-signed, axis=1, kind="stable")[:, :k]
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
        chosen_contributions = (_fixed(np.take_along_axis(contributions, order, axis=1)) / SCALE).tolist()
        names = np.array(self.input_names, dtype=object)[order].tolist()
        phrases = np.array(self.phrases, dtype=object)[order].tolist()
        plain = _PLAIN
        return [
            [
                {
                    "feature": name,
                    "value": value if type(value) in plain else json_plain(value),
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
        logs), built without Python code per reason: the chosen values are encoded in one ``json.dumps``
        call, the contributions as 9-decimal fixed point from integers (``_fixed``), every reason's
        fragments are gathered into one object array with numpy, and the whole batch is joined once and
        split per record (JSON text never holds a raw newline). Building and serialising 4,000 dicts for a
        1,000-record batch cost more than scoring it.
        """
        contributions = np.asarray(contributions, dtype=np.float64)
        order, keep = self.select(contributions, np.asarray(towards_positive, dtype=bool))
        n, k = order.shape
        if n == 0 or k == 0 or not keep.any():
            return [b"[]" for _ in range(n)]
        first, rest, tails = self._fragments()
        if self._kernels is not None and n > SMALL_BATCH:
            return self._compiled_json(contributions, order, keep, values)
        if n <= SMALL_BATCH:  # a few records: plain Python is cheaper than numpy's per-call overhead
            fixed_all = _fixed(np.take_along_axis(contributions, order, axis=1)).tolist()
            out = []
            for row, (indexes, kept_row, numbers) in enumerate(
                zip(order.tolist(), keep.tolist(), fixed_all, strict=True)
            ):
                parts = [first[i] if not at else rest[i] for at, i in enumerate(indexes[: sum(kept_row)])]
                out.append(
                    (
                        "["
                        + "".join(
                            head
                            + _json_values([values[self.input_names[i]][row]])[0]
                            + _number_text(number)
                            + tails[i]
                            for head, i, number in zip(parts, indexes, numbers, strict=False)
                        )
                        + "]"
                    ).encode()
                )
            return out
        table = np.empty((len(self.input_names), n), dtype=object)
        for i, name in enumerate(self.input_names):
            table[i, :] = list(values[name])
        kept = keep.ravel()
        chosen = order.ravel()[kept]  # the kept reasons, record by record (a prefix of each record's k)
        rows = np.repeat(np.arange(n), k)[kept]
        fixed = _fixed(contributions[rows, chosen])
        magnitude = np.abs(fixed)
        pieces = np.full((n, k, 8), "", dtype=object)
        slots = pieces.reshape(n * k, 8)
        heads = np.where(np.tile(np.arange(k), n)[kept] == 0, first[chosen], rest[chosen])
        slots[kept, 0] = heads
        slots[kept, 1] = _json_values(table[chosen, rows].tolist())
        slots[kept, 2] = np.where(fixed < 0, _NEGATIVE, _POSITIVE)  # object scalars: no numpy str per item
        slots[kept, 3:7] = _decimal_parts(magnitude)
        slots[kept, 7] = tails[chosen]
        frame = np.empty((n, 8 * k + 2), dtype=object)
        frame[:, 0] = "["
        frame[:, 1:-1] = pieces.reshape(n, 8 * k)
        frame[:, -1] = "]\n"
        return "".join(frame.ravel().tolist()).encode().split(b"\n")[:-1]

    def _compiled_json(
        self,
        contributions: np.ndarray,
        order: np.ndarray,
        keep: np.ndarray,
        values: Mapping[str, Sequence[Any]],
    ) -> list[bytes]:
        """``reasons_json`` by the compiled loop: the kept values' JSON texts (input by input, a category's
        from its table) and the contributions as fixed point go in, one buffer of every record's text
        comes out and is cut per record."""
        n, k = order.shape
        kept = keep.ravel()
        chosen = order.ravel()[kept]  # record by record, strongest first
        rows = np.repeat(np.arange(n), k)[kept]
        texts = np.empty(chosen.size, dtype=object)
        for i in np.unique(chosen).tolist():
            at = np.flatnonzero(chosen == i)
            wanted = rows[at].tolist()
            picked = (
                itemgetter(*wanted)(values[self.input_names[i]])
                if len(wanted) > 1
                else (values[self.input_names[i]][wanted[0]],)
            )
            table = self._category_texts[i]
            found = list(map(table.get, picked)) if table is not None else None
            if found is None or None in found:  # a number, or a value outside the categories
                found = _json_values(list(picked))
            texts[at] = found
        blob = np.frombuffer(bytearray("\n".join(texts.tolist()).encode()), dtype=np.uint8)
        breaks = np.flatnonzero(blob == 10)  # JSON text never holds a raw newline
        starts = np.concatenate([[0], breaks + 1]).astype(np.int64)
        ends = np.concatenate([breaks, [blob.size]]).astype(np.int64)
        fixed = _fixed(contributions[rows, chosen])
        order = np.ascontiguousarray(order, dtype=np.intp)
        keep = np.ascontiguousarray(keep, dtype=bool)
        bounds, fragments, text = self._fragment_bounds, self._fragment_bytes, self._kernels.reason_text
        lengths = np.empty(n, dtype=np.int64)
        text(order, keep, fixed, blob, starts, ends, fragments, bounds, lengths, np.empty(0, dtype=np.uint8))
        stops = np.cumsum(lengths)
        at = stops - lengths
        out = np.empty(int(stops[-1]), dtype=np.uint8)
        text(order, keep, fixed, blob, starts, ends, fragments, bounds, at, out)
        data = out.tobytes()
        return [data[a:b] for a, b in zip(at.tolist(), stops.tolist(), strict=True)]

    def _fragments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per input: the opening of its reason (first in the list, after another) and its closing."""
        if self._heads is None:
            heads = ['{"feature":' + json.dumps(name) + ',"value":' for name in self.input_names]
            self._heads = (
                np.array(heads, dtype=object),
                np.array(["," + head for head in heads], dtype=object),
                np.array([',"phrase":' + json.dumps(text) + "}" for text in self.phrases], dtype=object),
            )
        return self._heads


_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
DECIMALS = 9
SCALE = 10**DECIMALS
_NEGATIVE = np.array(',"contribution":-', dtype=object)
_POSITIVE = np.array(',"contribution":', dtype=object)


def _fixed(contributions: np.ndarray) -> np.ndarray:
    """Contributions in units of ``10**-DECIMALS`` log-odds, as integers. A reason's contribution is
    ``fixed / SCALE``: the double nearest the 9-decimal value (IEEE division is correctly rounded), so
    the dicts and the JSON text (pieced together from digit tables: Python's shortest float repr cost more than
    the rest of a batch's reasons) carry the same number."""
    scaled = np.rint(np.asarray(contributions, dtype=np.float64) * SCALE)
    return np.clip(scaled, -(2.0**62), 2.0**62).astype(np.int64)  # (finite: the scorer checks them)


SMALL_BATCH = 8  # records up to which reasons_json assembles in plain Python


def _number_text(fixed: int) -> str:
    """``,"contribution":<fixed / SCALE as DECIMALS decimals>``, as ``_decimal_parts`` writes it."""
    sign = _NEGATIVE.item() if fixed < 0 else _POSITIVE.item()
    whole, fraction = divmod(abs(fixed), SCALE)
    return f"{sign}{whole}.{fraction:0{DECIMALS}d}"


_UNITS = np.array([f"{i}." for i in range(1000)], dtype=object)  # integer parts with the point
_TRIPLES = np.array([f"{i:03d}" for i in range(1000)], dtype=object)  # three decimals each


def _decimal_parts(magnitude: np.ndarray) -> np.ndarray:
    """``(m, 4)`` text pieces of each ``|fixed|``: integer part with the point, then its 9 decimals in
    three groups of three, gathered from tables (no number formatted per item)."""
    whole, fraction = magnitude // SCALE, magnitude % SCALE
    out = np.empty((magnitude.size, 4), dtype=object)
    if magnitude.size and int(whole.max()) < _UNITS.size:
        out[:, 0] = _UNITS[whole]
    else:
        out[:, 0] = [text + "." for text in _json_texts(whole.tolist())]
    out[:, 1] = _TRIPLES[fraction // 1_000_000]
    out[:, 2] = _TRIPLES[(fraction // 1_000) % 1_000]
    out[:, 3] = _TRIPLES[fraction % 1_000]
    return out


def _json_texts(items: list[Any]) -> list[str]:
    """Each item's JSON text (items are scalars), from one ``json.dumps`` call; ``null`` for a
    non-finite number (JSON has no NaN)."""
    text = json.dumps(items, separators=("\n", ":"))
    texts = text[1:-1].split("\n")
    if "NaN" in text or "Infinity" in text:  # rare: only then look at each item
        texts = ["null" if text in _NON_FINITE else text for text in texts]
    return texts


def _json_values(items: list[Any]) -> list[str]:
    """The JSON text of each chosen value (numpy integers and the like become Python values first)."""
    try:
        return _json_texts(items)
    except TypeError:  # not JSON serialisable as is: a numpy scalar
        return _json_texts([json_plain(item) for item in items])
