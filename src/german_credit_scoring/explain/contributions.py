"""Exact per-feature contributions to the model's log-odds, and a fast path through the fitted pipeline.

Two supported estimators (``model.type``), each explained exactly in its own units, the log-odds
(``decision_function``) of the positive class::

    margin(x) == base_value + contributions(x).sum()        (to floating-point rounding)

**Linear models** (``logistic_regression``): ``contribution_c = coef_c * (x_c - b_c)`` per model column
``c`` (the transformer's output), against the **baseline** ``b``:

- a numeric input sits at its training mean: 0 in the scaled units of ``standard``/``log1p_standard``
  (the scaler's ``mean_``), the imputer's training median for ``passthrough``;
- a categorical input sits at the equal-weight average of its categories (``1/K`` per one-hot column):
  a category's contribution is its weight minus the average weight of the feature's categories;
- or, when a background sample is given (``LinearContributions(..., background=Xt)``), the background's
  column means: the textbook "average applicant" of ``shap.LinearExplainer`` (feature independence).

``base_value = intercept + coef . b``. The defaults need no data, so the service explains with the
model artefact alone.

**Tree ensembles** (``hist_gradient_boosting``): path-dependent TreeSHAP (Lundberg et al. 2020, the
algorithm of ``shap.TreeExplainer``'s default), exact Shapley values of the trees' conditional
expectations using the training counts stored in every node. ``base_value`` is the model's baseline
plus each tree's count-weighted mean leaf value. A tree's Shapley values only depend on which
interval between the tree's thresholds each of its features falls in (a **cell**), so each tree's
values are precomputed per cell when the explainer is built (from the leaves' games, each solved per
agreement pattern); explaining a batch is then one ``searchsorted`` per feature, a cell per (tree,
record) and one table row per (tree, record), vectorised over the batch (no Python per row, no per-leaf
work). The same cells give each tree's leaf, so the tables also give the model's log-odds, bit for bit
``decision_function`` (``TreeContributions.margins``). A tree with too many cells, and a record with a
missing value, are explained leaf by leaf (``TreeContributions``), and predicted by scikit-learn.

**Fairness mixtures** (``exponentiated_gradient``, served as ``explain.mitigation.MixtureClassifier``):
the score is a step function of the members' hard decisions and has no additive decomposition. What
is explained is the mixture's weighted mean member log-odds ``m(x) = sum_i w_i f_i(x) / sum_i w_i``
(``f_i``: member ``i``'s ``decision_function``), exactly: its contributions and base value are the
same weighted mean of each member's own (linear or tree, as above; ``MixtureContributions``). A record
where ``m(x) > 0`` (the members' own decision point) disagrees with the mixture's decision gets no
reasons (``PipelineExplainer.leans_against``; the scorer says why).

Contributions of model columns are summed per **input feature** (all one-hot columns of a category
belong to their feature), which keeps the sum exact. The tree tables hold those sums already (one value
per input a tree splits on, summed once when the explainer is built).

``FastTransformer`` re-implements the fitted ``ColumnTransformer`` in numpy for column-wise input
(the service's hot path; the scikit-learn transformer costs ~10 ms per call on pandas frames). It is
only used after ``verify`` found it bit-identical to scikit-learn on probe records; otherwise callers
keep scikit-learn's transformer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

# Tree tables larger than this many entries (8 bytes each) are refused: a deep tree's agreement tables
# grow as 2^depth; the service then serves decisions with "no explanation" instead of running out of memory.
MAX_TREE_TABLE = 20_000_000
# Leaves with more distinct features on their path are solved per batch instead of tabled.
TABLE_DEPTH = 10
# Records explained per pass of the tree explainer.
ROWS_PER_PASS = 256
# A tree's cell table (Shapley values per combination of threshold intervals) may hold this many
# entries; larger trees are explained leaf by leaf. All trees' tables share MAX_TREE_TABLE.
CELL_TABLE_LIMIT = 1 << 18
# Log-odds of at least this many records are summed with one ``+=`` per tree; fewer with one accumulate.
SEQUENTIAL_MIN = 64


class ExplanationUnavailable(Exception):
    """This model (or record) cannot be explained exactly; the message says why."""


# --------------------------------------------------------------------------------------------
# The fitted transformer as numpy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NumericBranch:
    columns: list[str]
    fill: np.ndarray  # imputer statistics (training medians)
    log1p: bool
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True)
class _OneHotBranch:
    columns: list[str]
    fill: Any  # the imputer's constant
    lookups: list[dict[Any, int]]  # per column: category -> position within the column's block
    widths: list[int]


class FastTransformer:
    """The fitted ``ColumnTransformer`` (as ``transform.build_transformer`` makes it) in numpy.

    ``transform(columns)`` takes ``{input name: values}`` (``None``/NaN for missing) and returns the
    same float64 matrix as ``transformer.transform(frame)``. ``owner[c]`` is the index (in
    ``input_names``) of the input that model column ``c`` comes from.
    """

    def __init__(self, transformer, input_names: Sequence[str]) -> None:
        self.input_names = list(input_names)
        index = {name: i for i, name in enumerate(self.input_names)}
        self.branches: list[_NumericBranch | _OneHotBranch] = []
        owner: list[int] = []
        self.one_hot: list[int] = []  # inputs one-hot encoded (at most one of their columns is 1)
        if getattr(transformer, "sparse_output_", False):
            raise ExplanationUnavailable("the transformer's output is sparse")
        for name, branch, columns in transformer.transformers_:
            if name == "remainder" or branch == "drop":
                continue
            columns = list(columns)
            unknown = [c for c in columns if c not in index]
            if unknown or not hasattr(branch, "steps"):
                raise ExplanationUnavailable(f"transformer branch {name!r} is not a pipeline of model inputs")
            steps = dict(branch.steps)
            if "encode" in steps:
                self.branches.append(self._one_hot(columns, steps))
                for column, width in zip(columns, self.branches[-1].widths, strict=True):
                    owner += [index[column]] * width
                    self.one_hot.append(index[column])
            else:
                self.branches.append(self._numeric(name, columns, steps))
                owner += [index[c] for c in columns]
        self.owner = np.asarray(owner, dtype=np.intp)
        self.width = len(owner)
        # each input's model columns are contiguous: blocks of (start, owner)
        starts = [c for c in range(self.width) if c == 0 or owner[c] != owner[c - 1]]
        self.block_start = np.asarray(starts, dtype=np.intp)
        self.block_owner = self.owner[self.block_start] if starts else np.zeros(0, dtype=np.intp)
        if len(set(self.block_owner.tolist())) != len(starts):
            raise ExplanationUnavailable("an input's model columns are not contiguous")

    @staticmethod
    def _one_hot(columns: list[str], steps: dict[str, Any]) -> _OneHotBranch:
        imputer, encoder = steps.get("impute"), steps["encode"]
        if set(steps) - {"impute", "encode"} or getattr(encoder, "drop_idx_", None) is not None:
            raise ExplanationUnavailable(f"one-hot branch {columns}: unsupported steps {list(steps)}")
        if getattr(encoder, "_infrequent_enabled", False):
            raise ExplanationUnavailable(f"one-hot branch {columns}: infrequent categories are not supported")
        fill = None
        if imputer is not None:
            if imputer.strategy != "constant":
                raise ExplanationUnavailable(f"one-hot branch {columns}: imputer {imputer.strategy!r}")
            fill = imputer.statistics_[0]
        lookups = [{value: i for i, value in enumerate(cats)} for cats in encoder.categories_]
        return _OneHotBranch(columns, fill, lookups, [len(cats) for cats in encoder.categories_])

    @staticmethod
    def _numeric(name: str, columns: list[str], steps: dict[str, Any]) -> _NumericBranch:
        if set(steps) - {"impute", "log1p", "scale"}:
            raise ExplanationUnavailable(f"branch {name!r}: unsupported steps {list(steps)}")
        imputer = steps.get("impute")
        if imputer is None or imputer.strategy not in {"median", "mean", "most_frequent", "constant"}:
            raise ExplanationUnavailable(f"branch {name!r}: needs a fitted SimpleImputer")
        log1p = "log1p" in steps
        if log1p and steps["log1p"].func is not np.log1p:
            raise ExplanationUnavailable(f"branch {name!r}: the function step is not log1p")
        scaler = steps.get("scale")
        mean = scale = None
        if scaler is not None:
            mean = scaler.mean_ if scaler.with_mean else None
            scale = scaler.scale_ if scaler.with_std else None
        return _NumericBranch(columns, np.asarray(imputer.statistics_, dtype=np.float64), log1p, mean, scale)

    def transform(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """The model matrix of column-wise inputs (every input name must be present)."""
        size = len(columns[self.input_names[0]])
        out = np.zeros((size, self.width), dtype=np.float64)
        start = 0
        for branch in self.branches:
            if isinstance(branch, _NumericBranch):
                block = np.empty((size, len(branch.columns)), dtype=np.float64)
                for j, name in enumerate(branch.columns):
                    block[:, j] = np.asarray(columns[name], dtype=np.float64)  # None -> nan
                missing = np.isnan(block)
                if missing.any():
                    block[missing] = np.take(branch.fill, np.nonzero(missing)[1])
                if branch.log1p:
                    block = np.log1p(block)
                if branch.mean is not None:
                    block -= branch.mean
                if branch.scale is not None:
                    block /= branch.scale
                out[:, start : start + block.shape[1]] = block
                start += block.shape[1]
            else:
                for name, lookup, width in zip(branch.columns, branch.lookups, branch.widths, strict=True):
                    values = columns[name]
                    get = lookup.get
                    codes = [get(value, -1) for value in values]
                    if -1 in codes:  # missing (None/NaN: the imputer's constant) or unknown (all zeros)
                        fill = get(branch.fill, -1)
                        codes = [
                            fill if code == -1 and (value is None or value != value) else code
                            for code, value in zip(codes, values, strict=True)
                        ]
                    positions = np.asarray(codes, dtype=np.intp)
                    known = positions >= 0
                    if known.all():
                        out[np.arange(size), start + positions] = 1.0
                    else:
                        out[np.nonzero(known)[0], start + positions[known]] = 1.0
                    start += width
        return out

    def verify(self, transformer, probe: Mapping[str, Sequence[Any]]) -> bool:
        """Whether this transformer gives exactly scikit-learn's matrix on ``probe`` (column-wise records)."""
        import pandas as pd

        frame = pd.DataFrame({name: list(probe[name]) for name in self.input_names})
        for name in self.input_names:
            if frame[name].dtype == object:
                values = frame[name].to_numpy(dtype=object)
                values[pd.isna(values)] = np.nan
                frame[name] = pd.Series(values, dtype=object)
        expected = np.asarray(transformer.transform(frame), dtype=np.float64)
        actual = self.transform(probe)
        return expected.shape == actual.shape and bool(np.array_equal(expected, actual, equal_nan=True))

    def group(self, column_values: np.ndarray) -> np.ndarray:
        """Sum model-column values ``(n, width)`` per input feature ``(n, len(input_names))``."""
        values = np.asarray(column_values, dtype=np.float64)
        out = np.zeros((values.shape[0], len(self.input_names)), dtype=np.float64)
        if values.shape[0] and self.width:  # one reduceat over each input's contiguous columns (no BLAS)
            out[:, self.block_owner] = np.add.reduceat(values, self.block_start, axis=1)
        return out


# --------------------------------------------------------------------------------------------
# Explainers: numpy in, numpy out
# --------------------------------------------------------------------------------------------


class LinearContributions:
    """Exact contributions of a linear model: ``coef * (x - baseline)`` per model column."""

    kind = "linear"

    def __init__(self, estimator, transformer: FastTransformer, background: np.ndarray | None = None) -> None:
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[0] != 1:
            raise ExplanationUnavailable("only binary linear models are explained")
        self.coef = coef[0]
        self.intercept = float(np.ravel(estimator.intercept_)[0])
        if background is not None:
            baseline = np.asarray(background, dtype=np.float64).mean(axis=0)
        else:
            baseline = default_baseline(transformer)
        if baseline.shape != self.coef.shape:
            raise ExplanationUnavailable(
                f"baseline has {baseline.shape[0]} columns, the model {self.coef.shape[0]}"
            )
        self.baseline = baseline
        self.base_value = self.intercept + float(self.coef @ baseline)
        self.group = transformer.group

    def margins(self, matrix: np.ndarray) -> tuple[None, None]:
        """No log-odds of its own (``TreeContributions.margins``): the estimator's ``decision_function``."""
        return None, None

    def margin_probe(self) -> None:
        """No log-odds of its own, so nothing to check them on (``TreeContributions.margin_probe``)."""
        return None

    def column_contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per model column ``(n, width)`` (``prepared``: unused, see ``margins``)."""
        return (np.asarray(matrix, dtype=np.float64) - self.baseline) * self.coef

    def contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per input feature ``(n, inputs)``: the model columns summed per input."""
        return self.group(self.column_contributions(matrix))


def default_baseline(transformer: FastTransformer) -> np.ndarray:
    """The data-free baseline (module docstring): training means for numbers, 1/K per category column."""
    parts: list[np.ndarray] = []
    for branch in transformer.branches:
        if isinstance(branch, _NumericBranch):
            value = branch.fill.copy()  # passthrough: the training median
            if branch.log1p:
                value = np.log1p(value)
            if branch.mean is not None:  # scaled: the training mean, which scales to 0
                value = np.zeros_like(value)
            parts.append(value)
        else:
            parts += [np.full(width, 1.0 / width) for width in branch.widths]
    return np.concatenate(parts) if parts else np.zeros(0)


class _PathLeaves:
    """Path-dependent TreeSHAP of some trees, leaf by leaf, vectorised over records.

    Leaves whose path has at most ``table_depth`` distinct features get a table of their Shapley
    values for every agreement pattern (built once); deeper leaves (rare: ``2**d`` patterns) are
    solved per batch with the same polynomial, vectorised over records and leaves. ``expected`` is
    the trees' count-weighted mean leaf value (their share of the base value).
    """

    def __init__(self, trees: Sequence[Any], width: int, table_depth: int = TABLE_DEPTH) -> None:
        self.width = width
        base = 0.0
        split_feature, split_threshold, split_missing_left = [], [], []
        pair_split, pair_left = [], []  # per (leaf, path node): which split and which way the path goes
        group_start, group_feature, group_position, group_leaf = [], [], [], []  # per (leaf, feature)
        leaves: list[tuple[float, np.ndarray, int]] = []  # value, zero fractions, first group
        for predictor in trees:
            nodes = predictor.nodes
            split_id: dict[int, int] = {}
            for node in np.nonzero(nodes["is_leaf"] == 0)[0]:
                split_id[int(node)] = len(split_feature)
                split_feature.append(int(nodes["feature_idx"][node]))
                split_threshold.append(float(nodes["num_threshold"][node]))
                split_missing_left.append(bool(nodes["missing_go_to_left"][node]))
            count = nodes["count"].astype(np.float64)
            stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                if not nodes["is_leaf"][node]:
                    left, right = int(nodes["left"][node]), int(nodes["right"][node])
                    stack.append((right, [*path, (node, False)]))
                    stack.append((left, [*path, (node, True)]))
                    continue
                value = float(nodes["value"][node])
                base += value * count[node] / count[0]
                if not path:
                    continue  # a tree without splits adds its value to the base only
                features: dict[int, list[tuple[int, bool]]] = {}
                zero: dict[int, float] = {}
                for step, (parent, went_left) in enumerate(path):
                    feature = int(nodes["feature_idx"][parent])
                    features.setdefault(feature, []).append((parent, went_left))
                    child = path[step + 1][0] if step + 1 < len(path) else node
                    zero[feature] = zero.get(feature, 1.0) * count[child] / count[parent]
                leaves.append((value, np.array([zero[f] for f in features]), len(group_start)))
                for position, feature in enumerate(features):
                    group_start.append(len(pair_split))
                    group_feature.append(feature)
                    group_position.append(position)
                    group_leaf.append(len(leaves) - 1)
                    for parent, went_left in features[feature]:
                        pair_split.append(split_id[parent])
                        pair_left.append(went_left)
        self.expected = base
        self.split_feature = np.asarray(split_feature, dtype=np.intp)
        self.split_threshold = np.asarray(split_threshold, dtype=np.float64)
        self.split_missing_left = np.asarray(split_missing_left, dtype=bool)
        self.pair_split = np.asarray(pair_split, dtype=np.intp)
        self.pair_left = np.asarray(pair_left, dtype=bool)
        self.group_start = np.asarray(group_start, dtype=np.intp)
        group_position = np.asarray(group_position, dtype=np.intp)
        group_leaf = np.asarray(group_leaf, dtype=np.intp)
        group_feature = np.asarray(group_feature, dtype=np.intp)
        depth = np.array([zero.size for _, zero, _ in leaves], dtype=np.intp)
        self.leaf_start = np.array([first for _, _, first in leaves], dtype=np.intp)
        # Tables, one depth at a time (vectorised over the leaves of that depth).
        tabled = depth <= table_depth
        size = np.where(tabled, (2 ** np.minimum(depth, table_depth)) * depth, 0)
        if int(size.sum()) > MAX_TREE_TABLE:
            raise ExplanationUnavailable(
                f"the trees' exact tables would hold {int(size.sum()):,} entries (> {MAX_TREE_TABLE:,})"
            )
        leaf_offset = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.intp)
        table = np.zeros(int(size.sum()))
        self.deep: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # per depth > table_depth
        for d in np.unique(depth):
            members = np.nonzero(depth == d)[0]
            values = np.array([leaves[m][0] for m in members])
            zeros = np.stack([leaves[m][1] for m in members])  # (L, d)
            groups = self.leaf_start[members][:, None] + np.arange(d)  # (L, d) group indexes
            if d <= table_depth:
                patterns = np.arange(2**d)
                agree = ((patterns[:, None] >> np.arange(d)) & 1).astype(np.float64)  # (P, d)
                shapley = leaf_shapley(values, zeros, agree[:, None, :])  # (P, L, d)
                for j, member in enumerate(members):
                    start = leaf_offset[member]
                    table[start : start + shapley.shape[0] * d] = shapley[:, j, :].ravel()
            else:
                self.deep.append((groups.ravel(), values, zeros, int(d)))
        self.table = table
        # Runtime plan, in a (rows = splits/groups/leaves, columns = records) layout so every step
        # gathers whole contiguous rows.
        group_end = np.append(self.group_start[1:], len(pair_split))
        pairs_per_group = group_end - self.group_start
        self.first_pair = self.group_start
        self.extra_pairs = [
            (np.nonzero(pairs_per_group > r)[0], self.group_start[pairs_per_group > r] + r)
            for r in range(1, int(pairs_per_group.max(initial=1)))
        ]
        tabled_leaves = np.nonzero(tabled)[0]
        self.tabled_leaves = tabled_leaves
        row_of_leaf = np.full(len(leaves), -1, dtype=np.intp)
        row_of_leaf[tabled_leaves] = np.arange(tabled_leaves.size)
        self.pattern_bits = [
            (row_of_leaf[tabled_leaves[depth[tabled_leaves] > pos]],
             self.leaf_start[tabled_leaves[depth[tabled_leaves] > pos]] + pos,
             pos)
            for pos in range(int(depth[tabled_leaves].max(initial=0)))
        ]  # fmt: skip
        # a tabled leaf's row in the table for a pattern: offset + pattern * depth (int32: < MAX_TREE_TABLE)
        self.tabled_width = depth[tabled_leaves].astype(np.int32)[:, None]
        self.tabled_offset = leaf_offset[tabled_leaves].astype(np.int32)[:, None]
        from scipy import sparse

        # (model column x group) ones: per-column sums of the groups' values are one sparse product
        self.to_columns = sparse.csr_matrix(
            (np.ones(group_feature.size), (group_feature, np.arange(group_feature.size))),
            shape=(width, group_feature.size),
        )
        # (groups x rows) intermediates stay small enough for the caches: ROWS_PER_PASS records at the
        # size of a whole model, more for a few trees
        self.rows_per_pass = max(ROWS_PER_PASS, ROWS_PER_PASS * 16_384 // max(1, self.group_start.size))

    def column_contributions(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float64)
        n = matrix.shape[0]
        if n == 0 or self.group_start.size == 0:
            return np.zeros((n, self.width), dtype=np.float64)
        step = self.rows_per_pass
        if n > step:
            return np.vstack([self.column_contributions(matrix[i : i + step]) for i in range(0, n, step)])
        x = matrix.T[self.split_feature]  # (splits, n)
        go_left = x <= self.split_threshold[:, None]
        missing = np.isnan(x)
        if missing.any():
            go_left = np.where(missing, self.split_missing_left[:, None], go_left)
        follows = go_left[self.pair_split] == self.pair_left[:, None]  # (pairs, n)
        agrees = follows[self.first_pair]  # (groups, n)
        for groups, pairs in self.extra_pairs:  # a feature split on more than once along a path
            agrees[groups] &= follows[pairs]
        pattern = np.zeros((self.tabled_leaves.size, n), dtype=np.int32)
        for rows, groups, pos in self.pattern_bits:
            pattern[rows] |= agrees[groups].astype(np.int32) << pos
        row = pattern * self.tabled_width + self.tabled_offset  # each tabled leaf's row in the table
        values = np.zeros(agrees.shape, dtype=np.float64)
        for rows, groups, pos in self.pattern_bits:  # the leaf's group at position pos
            values[groups] = self.table[row[rows] + pos]
        for groups, leaf_values, zeros, d in self.deep:
            agree = agrees[groups].reshape(-1, d, n).transpose(2, 0, 1).astype(np.float64)  # (n, L, d)
            values[groups] = leaf_shapley(leaf_values, zeros, agree).reshape(n, -1).T
        return np.asarray(self.to_columns @ values).T


@dataclass(frozen=True)
class _Celled:
    """A tabled tree: its split columns and their cuts, and how a cell index is made of digits: column
    ``j`` is in digit ``dim[j]`` (of ``radix[dim[j]]`` values) and adds ``weight[j]`` to it above its cut
    (1 for an interval column; ``i + 1`` for the ``i``-th category of a one-hot input with states)."""

    tree: Any
    features: np.ndarray
    cuts: list[np.ndarray]
    cells: int
    dim: list[int]
    weight: list[int]
    radix: list[int]


class TreeContributions:
    """Path-dependent TreeSHAP for a fitted binary ``HistGradientBoostingClassifier``, vectorised.

    A tree's Shapley values depend on a record only through which side of each of the tree's splits
    it falls: per feature, which interval between the tree's thresholds on it holds the record's value.
    Every combination of those intervals is a **cell**; each tree gets a table with one row per cell
    of its exact Shapley values (``_PathLeaves`` on one representative record per cell, built once)
    and its leaf value per cell. A batch costs one ``searchsorted`` per feature, each tree's cell per
    record (``cells``: one look-up per (feature, tree) in a small table, summed per tree) and then one
    row per (tree, record) added into its outputs, tree after tree, by a compiled loop
    (``explain.kernels``; without numba, ``numpy.take`` of fixed-size rows, trees with the same number of
    features sharing a table, and one ``bincount`` per output column): no per-leaf work at request time.

    The same cells give the model's own log-odds (``margins``): each tree's leaf value, added in
    scikit-learn's order (its baseline, then tree after tree), bit for bit ``decision_function``, so
    the prediction and the explanation share one pass over the trees. Only when every tree is tabled
    and no record has a missing value; callers use ``decision_function`` otherwise.

    A tree whose table would exceed ``cell_limit`` entries (``cells * (features + 1)``), or all trees
    past ``MAX_TREE_TABLE`` entries in all, is explained leaf by leaf instead, as is a record with a
    missing value (its missing-value directions are not intervals). ``deep``: the leaves solved per
    batch there. ``owner`` (model column -> output index, e.g. ``FastTransformer.owner``) lets
    ``contributions`` sum straight into those outputs.

    ``one_hot`` (outputs whose model columns are one-hot, ``FastTransformer.one_hot``): such an input's
    ``k`` columns that a tree splits on are one digit of the cell with ``k + 1`` states (which of them
    is the record's category, or none) instead of ``2**k`` interval combinations of which only ``k + 1``
    occur: ~37 % fewer cells for the default model (``_category_states``). A record with more than one
    of an input's categories (no encoder makes one) has no cell and goes leaf by leaf, and to
    ``decision_function``.
    """

    kind = "tree"

    def __init__(
        self,
        estimator,
        width: int,
        table_depth: int = TABLE_DEPTH,
        cell_limit: int | None = None,  # None: CELL_TABLE_LIMIT
        owner: Sequence[int] | np.ndarray | None = None,
        outputs: int | None = None,
        one_hot: Sequence[int] | None = None,
    ) -> None:
        predictors = getattr(estimator, "_predictors", None)
        if not predictors or len(predictors[0]) != 1:
            raise ExplanationUnavailable("only binary gradient-boosting classifiers are explained")
        trees = [predictor for (predictor,) in predictors]
        if any(tree.nodes["is_categorical"].any() for tree in trees):
            raise ExplanationUnavailable("native categorical splits are not supported")
        # scikit-learn's own prediction of one tree (``TreePredictor.predict``, one thread), for each cell's
        # leaf value: the bin mapper's known categories as ``_predict_iterations`` passes them
        self._known_categories = estimator._bin_mapper.make_known_categories_bitsets()
        self.width = width
        self.table_depth = table_depth
        self._trees = trees
        self._leaves: _PathLeaves | None = None  # every tree, leaf by leaf: built for a missing value
        baseline = np.ravel(estimator._baseline_prediction)
        self.baseline = float(baseline[0])  # scikit-learn's raw prediction before the first tree
        self.base_value = self.baseline + sum(map(_expected, trees))
        self.owner = np.arange(width, dtype=np.intp) if owner is None else np.asarray(owner, dtype=np.intp)
        self.outputs = int(self.owner.max(initial=-1)) + 1 if outputs is None else int(outputs)
        if self.owner.shape != (width,) or (self.owner < 0).any() or (self.owner >= self.outputs).any():
            raise ValueError(
                f"owner must map each of the {width} model columns to one of {self.outputs} outputs"
            )
        # the tables hold one value per output (model columns of one input summed once, at build)
        self.per_column = bool(np.array_equal(self.owner, np.arange(width)))
        splits_of = [tree.nodes[tree.nodes["is_leaf"] == 0] for tree in trees]
        self.states = self._category_states(splits_of, one_hot)
        cell_limit = CELL_TABLE_LIMIT if cell_limit is None else cell_limit
        celled: list[_Celled] = []
        rest: list[Any] = []
        total = 0
        for tree, splits in zip(trees, splits_of, strict=True):
            if splits.size == 0:  # one leaf: all base value, and one cell for margins
                celled.append(_Celled(tree, np.zeros(0, dtype=np.intp), [], 1, [], [], []))
                total += 1
                continue
            features = np.unique(splits["feature_idx"]).astype(np.intp)
            cuts = [np.unique(splits["num_threshold"][splits["feature_idx"] == f]) for f in features]
            # a cell's digits: one per numeric column (its interval), one per one-hot input (its state)
            dim, weight, radix = [], [], []
            for f, c in zip(features.tolist(), cuts, strict=True):
                state = int(self.states[f])
                if state >= 0 and dim and self.states[features[len(dim) - 1]] == state:
                    weight.append(weight[-1] + 1)  # the input's next category of this tree
                    radix[-1] += 1
                else:
                    weight.append(1)
                    radix.append(2 if state >= 0 else c.size + 1)
                dim.append(len(radix) - 1)
            cells = int(np.prod(radix, dtype=np.float64))
            entries = cells * (features.size + 1)
            finite = all(np.isfinite(c).all() for c in cuts)
            if finite and entries <= cell_limit and total + entries <= MAX_TREE_TABLE:
                celled.append(_Celled(tree, features, cuts, cells, dim, weight, radix))
                total += entries
            else:
                rest.append(tree)
        self.rest = _PathLeaves(rest, width, table_depth) if rest else None
        from german_credit_scoring.explain import kernels  # numba's import (~1.5 s) at load, not per request

        self.kernel = kernels.table_sums  # None: the numpy path (no numba; the tests' oracle)
        self.cell_trees = sum(1 for entry in celled if entry.features.size)
        # margins from the tables need every tree, in order (a tree left out breaks scikit-learn's sum)
        self.predicts = self.rest is None and baseline.size == 1
        self._build_cells(celled, width, table_depth)
        # numpy's path only: bincount indexes of a full pass (record r, value -> r * outputs + its
        # output), built on its first use (~3.6 MB for the default model; not needed with the compiled loop)
        self._sums: list[np.ndarray] | None = None

    def _category_states(self, splits_of: list[np.ndarray], one_hot: Sequence[int] | None) -> np.ndarray:
        """Per model column, the one-hot input whose categories are cell states (``-1``: intervals).

        A record has at most one category of a one-hot input, so the ``k`` columns of it a tree splits on
        have ``k + 1`` possible sides (one per category, and "none of them") instead of ``2**k``
        combinations of intervals. An input qualifies when every tree splits each of its columns at the
        same single threshold (a 0/1 column has one), so one global bin per column says "this category".
        """
        states = np.full(self.width, -1, dtype=np.intp)
        if not one_hot or self.per_column:
            return states
        cuts: dict[int, set[float]] = {}
        for splits in splits_of:
            for f, t in zip(splits["feature_idx"].tolist(), splits["num_threshold"].tolist(), strict=True):
                cuts.setdefault(int(f), set()).add(float(t))
        for o in sorted({int(o) for o in one_hot}):
            columns = np.nonzero(self.owner == o)[0]
            found = [t for c in columns for t in cuts.get(int(c), ())]
            if (
                columns.size
                and all(len(cuts.get(int(c), ())) <= 1 for c in columns)
                and np.isfinite(found).all()
            ):
                states[columns] = o
        return states

    def _build_cells(self, celled: list[_Celled], width: int, table_depth: int) -> None:
        from scipy import sparse

        used = sorted({int(f) for entry in celled for f in entry.features})
        self.used = np.asarray(used, dtype=np.intp)  # model columns any tabled tree splits on
        row_of = {f: i for i, f in enumerate(used)}
        edges: dict[int, list[np.ndarray]] = {f: [] for f in used}
        for entry in celled:
            for f, c in zip(entry.features.tolist(), entry.cuts, strict=True):
                edges[f].append(c)
        # per used column: every tabled tree's thresholds on it; a value's global bin is how many lie below it
        self.edges = [np.unique(np.concatenate(edges[f])) for f in used]
        # Trees by number of outputs (a group shares one table of fixed-size rows), in tree order
        # within a group; ``order`` is that layout, ``position`` a tree's place in it.
        outputs_of = [np.unique(self.owner[entry.features]) for entry in celled]
        sizes = np.array([outs.size for outs in outputs_of], dtype=np.intp)
        order = np.lexsort((np.arange(len(celled)), sizes))
        self.position = np.empty(len(celled), dtype=np.intp)
        self.position[order] = np.arange(len(celled))
        leaf_parts: list[np.ndarray] = []
        tables: list[np.ndarray] = []  # per group, its trees' rows
        # per group: (outputs per tree, first and last tree in layout order, rows, each tree's outputs)
        self.groups: list[tuple[int, int, int, np.ndarray, np.ndarray]] = []
        luts: dict[int, list[tuple[int, np.ndarray]]] = {row: [] for row in range(len(used))}
        first_cell = np.zeros(len(celled), dtype=np.intp)  # each tree's first row in its group's table
        global_first = np.zeros(len(celled), dtype=np.intp)  # ... in the leaf table
        cells_so_far = 0
        for size in np.unique(sizes).tolist():
            members = order[sizes[order] == size]
            rows_so_far = 0
            blocks, columns = [], []
            for t in members.tolist():
                entry = celled[t]
                tree, features, cuts, cells = entry.tree, entry.features, entry.cuts, entry.cells
                radix = np.array(entry.radix, dtype=np.int64)
                # per column: its digit's stride and radix (its interval, or its input's state), and what
                # its upper interval adds to the digit
                stride = np.concatenate([[1], np.cumprod(radix)[:-1]]).astype(np.int64)[entry.dim]
                radix, weight = radix[entry.dim], np.asarray(entry.weight, dtype=np.int64)
                # one representative record per cell: a cut itself lies in the interval it closes, +inf in the
                # last; a one-hot column is above its cut in its category's state only
                cell = np.arange(cells, dtype=np.int64)
                representative = np.zeros((cells, width), dtype=np.float64)
                for j, f in enumerate(features.tolist()):
                    interval = (cell // stride[j]) % radix[j]
                    if self.states[f] >= 0:
                        interval = (interval == weight[j]).astype(np.int64)
                    representative[:, f] = np.append(cuts[j], np.inf)[interval]
                leaf_parts.append(self._leaf_values(tree, representative))
                if size:
                    values = _PathLeaves([tree], width, table_depth).column_contributions(representative)
                    block = np.zeros((cells, size), dtype=np.float64)
                    for f, at in zip(
                        features, np.searchsorted(outputs_of[t], self.owner[features]), strict=True
                    ):
                        block[:, at] += values[:, f]  # columns in order, per output
                    blocks.append(block)
                    columns.append(outputs_of[t])
                first_cell[t], global_first[t] = rows_so_far, cells_so_far
                rows_so_far += cells
                cells_so_far += cells
                for j, f in enumerate(features.tolist()):
                    row = row_of[f]
                    # global bin b (edges[row][b-1] < x <= edges[row][b]) -> this tree's interval, times its stride
                    below = np.concatenate([[0], np.searchsorted(cuts[j], self.edges[row], side="right")])
                    luts[row].append((t, (below * weight[j] * stride[j]).astype(np.int32)))
            if size:
                first, last = int(self.position[members[0]]), int(self.position[members[-1]]) + 1
                tables.append(np.concatenate(blocks).ravel())
                self.groups.append((size, first, last, np.empty(0), np.stack(columns)))
        # every group's table in one array (the compiled loop's), each group's rows a view of it; copied
        # group by group, so the tables are held twice only one group at a time
        self.flat = np.empty(sum(table.size for table in tables), dtype=np.float64)
        starts = np.zeros(len(celled), dtype=np.int64)  # per tree (layout order): its group's first value
        widths = np.zeros(len(celled), dtype=np.int64)  # ... its row's width (0: no table)
        slots = np.zeros((len(celled), max([1] + [g[0] for g in self.groups])), dtype=np.int64)
        offset = 0
        for k, (size, first, last, _, outputs) in enumerate(self.groups):
            part = self.flat[offset : offset + tables[k].size]
            part[:] = tables[k]
            tables[k] = part
            rows = part.view(np.dtype((np.void, 8 * size))).reshape(-1)  # a row is one item
            self.groups[k] = (size, first, last, rows, outputs)
            starts[first:last], widths[first:last], slots[first:last, :size] = offset, size, outputs
            offset += part.size
        self.kernel_layout = (starts, widths, slots)
        self.leaf = np.concatenate(leaf_parts) if leaf_parts else np.zeros(0)  # in layout order
        self.leaf_first = (global_first - first_cell)[order][:, None]  # cell in group table -> leaf table
        # per used column, its pairs' look-up tables (pairs x bins) and the trees they add to (layout rows)
        self.luts = [np.stack([lut for _, lut in luts[row]]) for row in range(len(used))]
        pair_tree = [self.position[t] for row in range(len(used)) for t, _ in luts[row]]
        pairs = len(pair_tree)
        self.pair_bounds = np.cumsum([0] + [lut.shape[0] for lut in self.luts]).tolist()
        self.to_trees = sparse.csr_matrix(
            (np.ones(pairs, dtype=np.int32), (np.asarray(pair_tree, dtype=np.intp), np.arange(pairs))),
            shape=(len(celled), pairs),
        )
        self.first_cell = first_cell[order].astype(np.int32)[:, None]
        self.pairs = pairs
        # one-hot inputs with states: their used columns' rows in ``used`` (contiguous, an input's columns
        # are), where a record with more than one category above its cut has no cell
        states = self.states[self.used]
        self.state_rows = np.nonzero(states >= 0)[0]
        runs = states[self.state_rows]
        self.state_starts = np.flatnonzero(np.diff(runs, prepend=-1) != 0)
        if np.unique(runs).size != self.state_starts.size:
            raise ExplanationUnavailable("a one-hot input's columns are not contiguous")

    def _leaf_values(self, tree, records: np.ndarray) -> np.ndarray:
        """The tree's value for each record, by scikit-learn's own ``TreePredictor.predict`` (one thread)."""
        known, feature_map = self._known_categories
        return tree.predict(np.ascontiguousarray(records, dtype=np.float64), known, feature_map, 1)

    def _sum_index(self, rows: int) -> list[np.ndarray]:
        """Per group, where ``bincount`` adds each value of its trees' rows for ``rows`` records (record,
        tree, output order): ``record * outputs + output``; the first ``m`` records' part is a prefix."""
        return [
            (np.arange(rows)[:, None, None] * self.outputs + outputs[None, :, :]).ravel()
            for _, _, _, _, outputs in self.groups
        ]

    @property
    def leaves(self) -> _PathLeaves:
        """Every tree explained leaf by leaf (records with a missing value); built on first use."""
        if self._leaves is None:
            self._leaves = _PathLeaves(self._trees, self.width, self.table_depth)
        return self._leaves

    @property
    def deep(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """The leaves deeper than ``table_depth``, solved per batch when explained leaf by leaf."""
        return self.leaves.deep

    def cells(self, matrix: np.ndarray) -> np.ndarray:
        """Each tabled tree's row in its group's table ``(trees in layout order, n)`` for records without
        a missing value and with at most one category of each one-hot input (``several``)."""
        return self._cells_of(self._bins(matrix))

    def _bins(self, matrix: np.ndarray) -> np.ndarray:
        """Each used column's global bin ``(used, n)``: how many of its tabled thresholds lie below the value."""
        matrix = np.asarray(matrix, dtype=np.float64)
        bins = np.empty((self.used.size, matrix.shape[0]), dtype=np.intp)
        for row, (column, edges) in enumerate(zip(self.used.tolist(), self.edges, strict=True)):
            bins[row] = np.searchsorted(edges, matrix[:, column], side="left")
        return bins

    def several(self, bins: np.ndarray) -> np.ndarray:
        """Records ``(n,)`` above the cut in more than one column of a one-hot input with states: no
        one-hot encoder makes them, and no cell holds them (they are explained leaf by leaf)."""
        if self.state_starts.size == 0:
            return np.zeros(bins.shape[1], dtype=bool)
        return (np.add.reduceat(bins[self.state_rows], self.state_starts, axis=0) > 1).any(axis=0)

    def _cells_of(self, bins: np.ndarray) -> np.ndarray:
        n = bins.shape[1]
        out = np.empty((self.first_cell.shape[0], n), dtype=np.intp)
        parts = np.empty((self.pairs, min(n, ROWS_PER_PASS)), dtype=np.int32)
        bounds = self.pair_bounds
        for i in range(0, n, ROWS_PER_PASS):  # (pairs x rows) intermediates stay small enough for the caches
            m = min(ROWS_PER_PASS, n - i)
            block = parts[:, :m] if m == parts.shape[1] else np.empty((self.pairs, m), dtype=np.int32)
            # each pair's interval (or state) x stride, column by column
            for row, lut in enumerate(self.luts):
                pairs = block[bounds[row] : bounds[row + 1]]
                np.take(lut, bins[row, i : i + m], axis=1, out=pairs, mode="clip")
            out[:, i : i + m] = self.to_trees @ block + self.first_cell
        return out

    def margins(self, matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(log-odds, cells)`` from the tables: bit for bit the estimator's ``decision_function`` (its
        baseline plus each tree's leaf value, added tree after tree as scikit-learn adds them). ``(None,
        None)`` when some tree is not tabled, or a record has a missing value or several categories of
        a one-hot input (use ``decision_function``)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if not self.predicts or np.isnan(matrix).any():
            return None, None
        bins = self._bins(matrix)
        if self.several(bins).any():
            return None, None
        cells = self._cells_of(bins)
        return self.margins_of(cells), cells

    def margins_of(self, cells: np.ndarray) -> np.ndarray:
        """The log-odds of records whose ``cells`` are given (``margins``): the baseline, then ``+=`` tree
        after tree, as scikit-learn adds them. Strictly sequential either way: a ``+=`` per tree over a
        pass of records (one row of leaf values per tree, no other intermediate), or, for fewer than
        ``SEQUENTIAL_MIN`` records (where ~200 numpy calls would cost more than the sums), ``np.add.accumulate``
        down a (baseline + trees, records) block."""
        if not self.predicts:
            raise ExplanationUnavailable("some trees have no table: use the estimator's decision_function")
        n = cells.shape[1]
        out = np.full(n, self.baseline, dtype=np.float64)
        trees = self.position.tolist()  # each tree's row in layout order, in tree order
        step = 4 * ROWS_PER_PASS
        for i in range(0, n, step):  # (trees x rows) leaf values stay small enough for the caches
            m = min(step, n - i)
            leaf = np.take(self.leaf, cells[:, i : i + m] + self.leaf_first, mode="clip")  # layout order
            if m >= SEQUENTIAL_MIN:
                part = out[i : i + m]
                for row in trees:
                    part += leaf[row]
            else:
                terms = np.empty((len(trees) + 1, m), dtype=np.float64)
                terms[0] = self.baseline
                np.take(leaf, self.position, axis=0, out=terms[1:], mode="clip")  # tree order
                out[i : i + m] = np.add.accumulate(terms, axis=0)[-1]
        return out

    def margin_probe(self) -> np.ndarray | None:
        """Records on which ``margins`` must reproduce ``decision_function`` before it is used (``probe``);
        ``None`` when the tables give no log-odds (``predicts``)."""
        return self.probe() if self.predicts else None

    def probe(self) -> np.ndarray:
        """Records ``(m, width)`` that put every tabled threshold, and the doubles just below and above
        it, in every split column (each column cycling through its own values, twice with different
        alignments): where a leaf or an interval could be off by one, what ``margins`` is checked on.
        The columns of a one-hot input with states take their turns, the others at their cut (one
        category per record, as the encoder makes them)."""
        values = [np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)]) for e in self.edges]
        ends = [*self.state_starts.tolist(), self.state_rows.size]
        inputs = [self.state_rows[a:b] for a, b in pairwise(ends)]
        turns = [np.concatenate([np.full(values[r].size, r) for r in rows]) for rows in inputs]
        size = max([v.size for v in values] + [t.size for t in turns] + [1])
        out = np.zeros((2 * size, self.width), dtype=np.float64)
        stated = set(self.state_rows.tolist())
        for j, (column, options) in enumerate(zip(self.used.tolist(), values, strict=True)):
            if j not in stated:
                out[:size, column] = np.resize(options, size)
                out[size:, column] = np.resize(np.roll(options, 7 * j + 1), size)
        for k, (rows, turn) in enumerate(zip(inputs, turns, strict=True)):
            options = np.concatenate([values[r] for r in rows])
            columns = self.used[rows]
            out[:, columns] = np.concatenate([self.edges[r] for r in rows])  # each at its single cut
            for half, shift in ((0, 0), (1, 7 * k + 1)):
                pick = np.resize(np.roll(np.arange(options.size), shift), size)
                out[half * size + np.arange(size), self.used[turn[pick]]] = options[pick]
        return out

    def _tables(self, cells: np.ndarray) -> np.ndarray:
        """Contributions of the tabled trees ``(n, outputs)`` from the records' ``cells``: each tree's row
        per record added into its outputs by the compiled loop (``kernels.table_sums``), or by numpy
        without numba (``_tables_numpy``)."""
        if self.kernel is None:
            return self._tables_numpy(cells)
        sums = np.zeros((self.outputs, cells.shape[1]), dtype=np.float64)
        self.kernel(np.asarray(cells, dtype=np.intp), self.flat, *self.kernel_layout, sums)
        return np.ascontiguousarray(sums.T)

    def _tables_numpy(self, cells: np.ndarray) -> np.ndarray:
        """``_tables`` in numpy (and its oracle in the tests): per pass and group, every tree's row per
        record copied whole, summed per output by one ``bincount``."""
        n = cells.shape[1]
        out = np.zeros((n, self.outputs), dtype=np.float64)
        if self._sums is None:
            self._sums = self._sum_index(ROWS_PER_PASS)
        for i in range(0, n, ROWS_PER_PASS):
            m = min(ROWS_PER_PASS, n - i)
            sums = out[i : i + m].reshape(-1)  # a view: C-contiguous rows
            for (_, first, last, rows, _), index in zip(self.groups, self._sums, strict=True):
                values = np.take(rows, cells[first:last, i : i + m].T, mode="clip").view(np.float64)
                sums += np.bincount(index[: values.size], weights=values.reshape(-1), minlength=sums.size)
        return out

    def column_contributions(self, matrix: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
        """Contributions per model column ``(n, width)``: from the tables when they hold model columns
        (no ``owner``), else leaf by leaf (exact, slower: the tables hold sums per output)."""
        if self.per_column:
            return self.contributions(matrix, cells)
        return self.leaves.column_contributions(np.asarray(matrix, dtype=np.float64))

    def contributions(self, matrix: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
        """Contributions summed per output of ``owner`` ``(n, outputs)``; ``cells``: the records' cells
        when known (``margins`` gives them)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        missing = np.isnan(matrix).any(axis=1)
        owner = self.owner

        def regroup(values: np.ndarray) -> np.ndarray:  # per model column -> per output
            out = np.zeros((values.shape[0], self.outputs), dtype=np.float64)
            np.add.at(out.T, owner, values.T)
            return out

        if cells is None or missing.any():  # records with a hole are explained leaf by leaf below
            bins = self._bins(np.where(missing[:, None], 0.0, matrix) if missing.any() else matrix)
            missing |= self.several(bins)  # no cell either
            if missing.all():
                return regroup(self.leaves.column_contributions(matrix))
            cells = self._cells_of(bins)
        out = self._tables(cells)
        if self.rest is not None:
            out += regroup(self.rest.column_contributions(matrix))
        if missing.any():
            out[missing] = regroup(self.leaves.column_contributions(matrix[missing]))
        return out


def _expected(tree) -> float:
    """A tree's count-weighted mean leaf value: its share of the base value."""
    nodes = tree.nodes
    leaves = nodes["is_leaf"] == 1
    return float(
        (nodes["value"][leaves] * nodes["count"][leaves].astype(np.float64)).sum() / nodes["count"][0]
    )


def leaf_shapley(value: np.ndarray, zero: np.ndarray, agree: np.ndarray) -> np.ndarray:
    """Shapley values of leaves' games: ``value (L,)``, ``zero (L, d)``, ``agree (..., L, d)`` of 0/1.

    A leaf's value for a coalition ``S`` of its path's ``d`` features is
    ``value * prod(o_k for k in S) * prod(z_k for k not in S)`` (``o_k``: the record agrees with the path
    on feature ``k``; ``z_k``: the training share the path keeps on ``k``). For feature ``i``::

        phi_i = value * (o_i - z_i) * sum_s  s! (d-1-s)! / d!  *  [t^s] prod_{k != i} (z_k + o_k t)

    The product over all ``k`` is built once, then each factor is divided out (by ``z_i`` when
    ``o_i = 0``, else by ``z_i + t`` from the top coefficient down, which is stable since ``z_i <= 1``).
    """
    from math import factorial

    d = zero.shape[-1]
    agree = np.broadcast_to(agree, np.broadcast_shapes(agree.shape, zero.shape))
    poly = np.zeros((*agree.shape[:-1], d + 1))
    poly[..., 0] = 1.0
    for k in range(d):
        shifted = np.zeros_like(poly)
        shifted[..., 1:] = poly[..., :-1] * agree[..., k : k + 1]
        poly = poly * zero[:, k : k + 1] + shifted
    weights = np.array([factorial(s) * factorial(d - 1 - s) / factorial(d) for s in range(d)])
    full = poly[..., None, :]  # (..., L, 1, d+1)
    z = zero[..., :, None]  # (L, d, 1)
    without_absent = (full / z)[..., :d]  # o_i = 0: P / z_i, degree < d
    without_present = np.zeros((*agree.shape, d))  # o_i = 1: P / (z_i + t)
    z_i = np.broadcast_to(zero, agree.shape)
    without_present[..., d - 1] = full[..., 0, d, None]
    for j in range(d - 1, 0, -1):
        without_present[..., j - 1] = full[..., 0, j, None] - z_i * without_present[..., j]
    quotient = np.where(agree[..., None] > 0, without_present, without_absent)
    return value[:, None] * (agree - zero) * (quotient @ weights)


# --------------------------------------------------------------------------------------------
# One object for a fitted pipeline
# --------------------------------------------------------------------------------------------


@dataclass
class Explanation:
    """A batch's explanation: ``base_value + contributions.sum(axis=1) == margins`` row by row."""

    base_value: float
    contributions: np.ndarray  # (n, len(input_names)), log-odds
    margins: np.ndarray  # (n,), the log-odds explained: the model's (a mixture's: m(x), ``log_odds``)
    input_names: list[str]

    def residuals(self) -> np.ndarray:
        return self.base_value + self.contributions.sum(axis=1) - self.margins


def exact_explainer(
    estimator, transformer: FastTransformer, background: np.ndarray | None = None
) -> LinearContributions | TreeContributions:
    """The exact explainer of one fitted estimator on ``transformer``'s model matrix (a linear model,
    or a binary ``HistGradientBoostingClassifier``); ``ExplanationUnavailable`` naming any other type."""
    if hasattr(estimator, "coef_"):
        return LinearContributions(estimator, transformer, background)
    if type(estimator).__name__ == "HistGradientBoostingClassifier":
        return TreeContributions(
            estimator,
            transformer.width,
            owner=transformer.owner,
            outputs=len(transformer.input_names),
            one_hot=transformer.one_hot,
        )
    raise ExplanationUnavailable(f"no exact explainer for {type(estimator).__name__}")


class MixtureContributions:
    """Exact contributions of a fairness mixture's weighted mean member log-odds (``MixtureClassifier``).

    The mixture's score is a step function of its members' hard decisions (``predict``), which no sum
    of per-feature contributions reproduces. What is explained instead is the documented quantity

        m(x) = sum_i w_i * f_i(x) / sum_i w_i        (f_i: member i's ``decision_function``)

    which is additive: its contributions (and base value) are the same weighted mean of each member's
    exact ones (``LinearContributions``, ``TreeContributions``: ``exact_explainer``), so
    ``base_value + contributions(x).sum() == m(x)`` to rounding. Every member decides positive where
    its ``f_i(x) > 0`` (its own 0.5), so m(x) leans positive where ``m(x) > DECISION_POINT`` (0); a
    record on which that disagrees with the mixture's decision (its weighted vote) has no faithful
    reasons (``PipelineExplainer.leans_against``).
    """

    kind = "mixture"
    DECISION_POINT = 0.0  # the members' own decision point in log-odds (their predict: f_i(x) > 0)

    def __init__(self, estimator, transformer: FastTransformer, background: np.ndarray | None = None) -> None:
        members = list(getattr(estimator, "predictors", None) or [])
        weights = np.asarray(getattr(estimator, "weights", None), dtype=np.float64).ravel()
        if not members or weights.shape != (len(members),) or not weights.sum() > 0:
            raise ExplanationUnavailable("the mixture has no weighted members")
        self.estimators = members
        self.weights = weights / weights.sum()
        self.members: list[LinearContributions | TreeContributions] = []
        for member in members:
            try:
                self.members.append(exact_explainer(member, transformer, background))
            except ExplanationUnavailable as error:
                name = type(member).__name__
                raise ExplanationUnavailable(f"MixtureClassifier member {name}: {error}") from None
        bases = np.array([member.base_value for member in self.members], dtype=np.float64)
        self.base_value = float(self.weights @ bases)

    def log_odds(self, matrix: np.ndarray) -> np.ndarray:
        """m(x): the weighted mean of the members' ``decision_function`` (what is explained)."""
        out = np.zeros(np.shape(matrix)[0], dtype=np.float64)
        for weight, member in zip(self.weights, self.estimators, strict=True):
            out += weight * np.asarray(member.decision_function(matrix), dtype=np.float64).ravel()
        return out

    def margins(self, matrix: np.ndarray) -> tuple[None, None]:
        """No ``decision_function`` to reproduce bit for bit (``TreeContributions.margins``): see ``log_odds``."""
        return None, None

    def margin_probe(self) -> None:
        return None

    def column_contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per model column ``(n, width)``: the members' weighted mean."""
        return self._mean("column_contributions", matrix)

    def contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per input feature ``(n, inputs)``: the members' weighted mean."""
        return self._mean("contributions", matrix)

    def _mean(self, method: str, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float64)
        first, *rest = zip(self.weights, self.members, strict=True)
        out = first[0] * getattr(first[1], method)(matrix)
        for weight, member in rest:
            out += weight * getattr(member, method)(matrix)
        return out


class PipelineExplainer:
    """Exact contributions per input feature for a fitted ``Pipeline(transform, model)``.

    Raises ``ExplanationUnavailable`` (with the reason) for an estimator or transformer it cannot
    explain exactly. For a fairness mixture (``MixtureClassifier``) what is explained is its weighted
    mean member log-odds (``MixtureContributions``), not its score: ``log_odds`` gives that quantity
    and ``leans_against`` the records where it disagrees with the mixture's decision.
    """

    def __init__(self, pipeline, input_names: Sequence[str], background=None) -> None:
        transformer, estimator = pipeline[0], pipeline[-1]
        self.pipeline = pipeline
        self.transformer = FastTransformer(transformer, input_names)
        self.input_names = list(input_names)
        if background is not None and not isinstance(background, np.ndarray):
            background = self.transformer_matrix(background)
        # the log-odds at which the explained quantity's lean should match the decision; None: the
        # explained log-odds are the score's own, so the decision follows them by construction
        self.decision_point: float | None = None
        if type(estimator).__name__ == "MixtureClassifier":
            self.explainer: LinearContributions | TreeContributions | MixtureContributions = (
                MixtureContributions(estimator, self.transformer, background)
            )
            self.decision_point = MixtureContributions.DECISION_POINT
        else:
            self.explainer = exact_explainer(estimator, self.transformer, background)

    @property
    def base_value(self) -> float:
        return self.explainer.base_value

    @property
    def compiled(self) -> bool:
        """Whether the explainer runs numba's loops (a tree model, or a mixture with one): then the
        reasons' text is written by them too (``ReasonCodes(compiled=True)``), numba being loaded anyway."""
        members = (
            self.explainer.members if isinstance(self.explainer, MixtureContributions) else [self.explainer]
        )
        return any(getattr(member, "kernel", None) is not None for member in members)

    def log_odds(self, matrix: np.ndarray) -> np.ndarray:
        """The log-odds explained: the estimator's ``decision_function``; a mixture's m(x)."""
        if isinstance(self.explainer, MixtureContributions):
            return self.explainer.log_odds(matrix)
        return np.asarray(self.pipeline[-1].decision_function(matrix), dtype=np.float64).ravel()

    def leans_against(self, margins: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """Records ``(n,)`` whose explained log-odds (``log_odds``) lean against their decision
        (``positive``: decided positive), so their contributions would not be faithful reasons. Only a
        mixture has such records (``m(x) > 0`` against its vote); none for a model explained in its
        score's own log-odds."""
        positive = np.asarray(positive, dtype=bool)
        if self.decision_point is None:
            return np.zeros(positive.shape, dtype=bool)
        return (np.asarray(margins, dtype=np.float64) > self.decision_point) != positive

    def transformer_matrix(self, frame) -> np.ndarray:
        """scikit-learn's model matrix of a model frame (``data.model_frame``)."""
        return np.asarray(self.pipeline[0].transform(frame), dtype=np.float64)

    def margins(self, matrix: np.ndarray) -> tuple[np.ndarray | None, Any]:
        """``(log-odds, prepared)`` of model matrices when the explainer computes them exactly as the
        estimator's ``decision_function`` does while preparing their explanation (tree tables:
        ``TreeContributions.margins``); ``(None, None)`` otherwise. Pass ``prepared`` to ``explain``."""
        return self.explainer.margins(matrix)

    def margin_probe(self) -> np.ndarray | None:
        """Model matrices on which ``margins`` must reproduce ``decision_function`` before it is used
        (``TreeContributions.probe``); ``None`` when the explainer gives no margins."""
        return self.explainer.margin_probe()

    def column_contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per model column ``(n, width)`` of model matrices (``prepared``: see ``margins``)."""
        return self.explainer.column_contributions(matrix, prepared)

    def contributions(self, matrix: np.ndarray, prepared: Any = None) -> np.ndarray:
        """Contributions per input feature ``(n, len(input_names))`` of model matrices (trees sum them per
        input as they gather them)."""
        return self.explainer.contributions(matrix, prepared)

    def explain(
        self, matrix: np.ndarray, margins: np.ndarray | None = None, prepared: Any = None
    ) -> Explanation:
        """Contributions and log-odds of model matrices (``margins``/``prepared``: from ``margins``)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if margins is None:
            margins = self.log_odds(matrix)
        return Explanation(self.base_value, self.contributions(matrix, prepared), margins, self.input_names)

    def explain_frame(self, frame) -> Explanation:
        """Explain a model frame (``data.model_frame``) through scikit-learn's own transformer."""
        return self.explain(self.transformer_matrix(frame))


def contributions(pipeline, frame, input_names: Sequence[str] | None = None) -> tuple[float, np.ndarray]:
    """``(base_value, contributions (n, inputs))`` of a model frame: the batch API for global importance.

    ``np.abs(contributions).mean(axis=0)`` is the mean absolute contribution per input feature.
    """
    names = list(input_names) if input_names is not None else list(frame.columns)
    explainer = PipelineExplainer(pipeline, names)
    explanation = explainer.explain_frame(frame)
    return explanation.base_value, explanation.contributions
