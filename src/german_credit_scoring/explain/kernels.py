"""Compiled loops (numba) for explaining a batch at request time, with numpy and Python as their oracles.

``table_sums``: every tabled tree's row of Shapley values for each record, summed per output. The
numpy path it replaces (``TreeContributions._tables_numpy``: ``take`` of whole rows, then ``bincount``
per output) copies ~1,800 values per record into a temporary array and reads them again; the loop adds
each value straight into its output, tree after tree, and reads one tree's table for every record
before the next (a tree's table is ~220 kB: it stays in the cache while its records are summed).
Measured (``benchmarks/explain_benchmark.py``, 1,000 records, the default 200-tree model): 3.5 ms warm
and 5.5 ms with cold caches, against 8.5 and 7.5 ms for the numpy path (runs vary by ±20 %).

The values are added in the trees' table order for every record, whatever the batch: a record's
contributions do not depend on the records scored beside it. They agree with the numpy path and with
``shap`` to floating-point rounding (tests: 1e-12 and 1e-6).

``top_k``: each record's reasons chosen (``ReasonCodes.select``): the eligible inputs pointing most
towards its decision, ties to the lower input index, as numpy's stable sort orders them (its oracle).

``reason_text``: each record's reasons as JSON text, measured in a first call and written byte by byte
into one buffer in a second (``ReasonCodes.reasons_json``): the fragments of every input (its reason's opening and
closing, JSON-encoded once), each chosen value's JSON text, and each contribution as 9-decimal fixed
point, its digits written from the integer. The object-array path it replaces (gathering ~34,000 text
pieces for 1,000 records into a numpy object array and joining them) stays for small batches and
without numba, and is the oracle: the tests hold the two byte for byte equal.

Without numba (a platform it has no wheel for) every function here is ``None`` and callers keep their
numpy path. Importing this module imports numba (~1.3 s) and loads or compiles the loops for the one
signature each takes (eager; cached on disk where the package's ``__pycache__`` or the user's cache
directory is writable, in memory otherwise): callers import it when a model is loaded, and only for the
models that use it, never per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# cells (trees, n), flat table, each tree's first value, its row width, its outputs (trees, max width),
# and the sums (outputs, n), added into
SIGNATURE = "void(intp[:, :], float64[::1], int64[::1], int64[::1], int64[:, :], float64[:, ::1])"
# order and keep (n, k), kept contributions as fixed point, the kept values' text and each one's (start,
# end), the fragments' bytes and bounds, each record's start (or length, out) and the text (out)
TEXT = (
    "void(intp[:, ::1], boolean[:, ::1], int64[::1], uint8[::1], int64[::1], int64[::1], uint8[::1],"
    " int64[::1], int64[::1], uint8[::1])"
)
# contributions (n, inputs), towards the positive label (n), eligible inputs, order and keep (n, k; out)
TOP_K = "void(float64[:, :], boolean[::1], boolean[::1], intp[:, ::1], boolean[:, ::1])"
SCALE = 1_000_000_000  # 9 decimals (reasons.DECIMALS)


def _table_sums(cells, flat, starts, widths, slots, sums) -> None:  # pragma: no cover - compiled
    trees, n = cells.shape
    for t in range(trees):
        width, start = widths[t], starts[t]
        for j in range(width):
            row = sums[slots[t, j]]
            for x in range(n):
                row[x] += flat[start + cells[t, x] * width + j]


def _reason_text(
    order, keep, fixed, values, starts, ends, fragments, bounds, at, out
) -> None:  # pragma: no cover
    """Each record's reasons as JSON text: ``[``, then per kept reason its opening, its value's text, the
    contribution's key, ``-``, the integer digits, ``.``, 9 decimals and its closing, then ``]``.

    ``bounds``: per input its reason's opening when first, after another, and its closing (``3 * i``,
    ``+ 1``, ``+ 2`` into ``fragments``), then the contribution's key. With an empty ``out`` each
    record's length is written to ``at``; else each record is written to ``out`` from ``at[x]``."""
    n, k = order.shape
    inputs = (bounds.size - 2) // 3
    key_start, key_end = bounds[3 * inputs], bounds[3 * inputs + 1]
    write = out.size > 0
    r = 0
    for x in range(n):
        pos = at[x] if write else 0
        if write:
            out[pos] = 91  # [
        pos += 1
        first = True
        for j in range(k):
            if not keep[x, j]:
                continue
            i = order[x, j]
            head = 3 * i if first else 3 * i + 1
            first = False
            a, b, c, d = bounds[head], bounds[head + 1], starts[r], ends[r]
            if write:
                out[pos : pos + b - a] = fragments[a:b]
                out[pos + b - a : pos + b - a + d - c] = values[c:d]
                out[pos + b - a + d - c : pos + b - a + d - c + key_end - key_start] = fragments[
                    key_start:key_end
                ]
            pos += b - a + d - c + key_end - key_start
            magnitude = fixed[r]
            if magnitude < 0:
                if write:
                    out[pos] = 45  # -
                pos += 1
                magnitude = -magnitude
            whole, fraction = magnitude // SCALE, magnitude % SCALE
            digits, rest = 1, whole
            while rest >= 10:
                rest //= 10
                digits += 1
            if write:
                for d in range(digits - 1, -1, -1):
                    out[pos + d] = 48 + whole % 10
                    whole //= 10
                out[pos + digits] = 46  # .
                for d in range(9, 0, -1):
                    out[pos + digits + d] = 48 + fraction % 10
                    fraction //= 10
            pos += digits + 10
            tail = 3 * i + 2
            if write:
                out[pos : pos + bounds[tail + 1] - bounds[tail]] = fragments[bounds[tail] : bounds[tail + 1]]
            pos += bounds[tail + 1] - bounds[tail]
            r += 1
        if write:
            out[pos] = 93  # ]
        else:
            at[x] = pos + 1


def _top_k(contributions, towards, eligible, order, keep) -> None:  # pragma: no cover - compiled
    """Per record, the ``k`` eligible inputs whose contributions point most towards its decision (``+``
    for ``towards``, else ``-``), strongest first, ties to the lower input index; ``keep``: those > 0
    (``ReasonCodes.select``; ``order`` past them is 0)."""
    n, width = contributions.shape
    k = order.shape[1]
    best = np.empty(k, dtype=np.float64)
    for x in range(n):
        found = 0
        for i in range(width):
            if not eligible[i]:
                continue
            value = contributions[x, i] if towards[x] else -contributions[x, i]
            if not value > 0 or (found == k and value <= best[k - 1]):
                continue
            at = min(found, k - 1)
            while at > 0 and best[at - 1] < value:  # after equal values: the lower index stays first
                if at < k:
                    best[at] = best[at - 1]
                    order[x, at] = order[x, at - 1]
                at -= 1
            best[at] = value
            order[x, at] = i
            found = min(found + 1, k)
        for j in range(k):
            keep[x, j] = j < found
            if j >= found:
                order[x, j] = 0


def _compile(function: Callable[..., Any], signature: str) -> Callable[..., Any] | None:
    try:
        import numba
    except Exception as error:  # any import failure: the numpy path
        log.info("numba is not available (%s): explanations use the numpy path", error)
        return None
    for cache in (True, False):
        try:
            return numba.njit(signature, cache=cache, nogil=True)(function)
        except RuntimeError as error:  # no writable cache location: compile in memory
            if not cache:
                raise
            log.info("numba cannot cache its compiled code here (%s): compiling in memory", error)
    return None  # pragma: no cover


table_sums = _compile(_table_sums, SIGNATURE)
top_k = _compile(_top_k, TOP_K)
reason_text = _compile(_reason_text, TEXT)
