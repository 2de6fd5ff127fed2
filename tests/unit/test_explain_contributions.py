"""Exact contributions and reason codes, with the ``shap`` package as the oracle, for both model types.

Columns, labels and sensitive features come from the project's own contract and settings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from german_credit_scoring import data
from german_credit_scoring.explain.contributions import (
    ExplanationUnavailable,
    PipelineExplainer,
    contributions,
    leaf_shapley,
)
from german_credit_scoring.explain.reasons import ReasonCodes, phrase
from german_credit_scoring.lifecycle import transform
from german_credit_scoring.lifecycle.scoring import Scorer

MODEL_TYPES = ["logistic_regression", "hist_gradient_boosting"]


def _fit(settings, features, frame, model_type: str, include_sensitive: bool = False, **overrides):
    x = data.model_frame(frame, features, include_sensitive)
    y = data.positive_indicator(frame[settings.data.target], settings.data.positive_label)
    params = {**getattr(settings.model, model_type).model_dump(), **overrides}
    pipeline = transform.build_pipeline(features, model_type, params, settings.model.seed, include_sensitive)
    return pipeline.fit(x, y), x


@pytest.fixture(scope="module", params=MODEL_TYPES)
def fitted(request, settings, features, sample_frame):
    pipeline, frame = _fit(settings, features, sample_frame, request.param)
    return request.param, pipeline, frame


def _scorer(settings, features, pipeline, include_sensitive=False) -> Scorer:
    return Scorer(
        pipeline,
        features,
        include_sensitive,
        threshold=0.5,
        positive_label=str(settings.data.positive_label),
        negative_label="other",
        version="t",
    )


def test_contributions_reproduce_the_log_odds(fitted):
    # given a fitted model of either type and the rows it was trained on
    _, pipeline, frame = fitted
    # when every row is explained per input feature
    base, values = contributions(pipeline, frame)
    # then base value + contributions is the model's own log-odds, row by row
    margins = pipeline.decision_function(frame)
    assert values.shape == (len(frame), frame.shape[1])
    np.testing.assert_allclose(base + values.sum(axis=1), margins, rtol=0, atol=1e-6)


def test_contributions_match_shap(fitted):
    import shap

    model_type, pipeline, frame = fitted
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    matrix = explainer.transformer_matrix(frame.head(200))
    ours = explainer.column_contributions(matrix)
    if model_type == "logistic_regression":
        # the documented baseline is the background: feature-independent shap.LinearExplainer
        baseline = explainer.explainer.baseline
        oracle = shap.LinearExplainer(pipeline[-1], (baseline, np.zeros((baseline.size, baseline.size))))
    else:
        oracle = shap.TreeExplainer(pipeline[-1])  # path-dependent TreeSHAP, raw (log-odds) output
    expected = np.asarray(oracle.shap_values(matrix))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    assert explainer.base_value == pytest.approx(float(np.ravel(oracle.expected_value)[0]), abs=1e-6)
    # per input feature (what reasons are made of; trees sum them per input as they gather them)
    grouped = explainer.transformer.group(expected)
    np.testing.assert_allclose(explainer.contributions(matrix), grouped, rtol=0, atol=1e-6)
    margins, prepared = explainer.margins(matrix)  # the tree tables' own pass, reused by explain
    np.testing.assert_allclose(explainer.contributions(matrix, prepared), grouped, rtol=0, atol=1e-6)
    assert (margins is None) == (model_type == "logistic_regression")


def test_linear_baseline_from_a_background_is_its_mean(settings, features, sample_frame):
    import shap

    pipeline, frame = _fit(settings, features, sample_frame, "logistic_regression")
    # (100 rows: shap subsamples a larger background)
    background = PipelineExplainer(pipeline, list(frame.columns)).transformer_matrix(frame.head(100))
    explainer = PipelineExplainer(pipeline, list(frame.columns), background=background)
    oracle = shap.LinearExplainer(pipeline[-1], background)
    matrix = background
    np.testing.assert_allclose(
        explainer.column_contributions(matrix), oracle.shap_values(matrix), rtol=0, atol=1e-6
    )
    # the average applicant's contributions average to zero
    np.testing.assert_allclose(explainer.contributions(background).mean(axis=0), 0, atol=1e-9)


def test_deep_leaves_are_solved_without_tables(settings, features, sample_frame):
    import shap

    from german_credit_scoring.explain.contributions import TreeContributions

    # given leaves deeper than the tabled depth (here: every leaf below depth 2 is solved per batch)
    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=20)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    deep = TreeContributions(pipeline[-1], explainer.transformer.width, table_depth=2)
    assert deep.deep, "expected leaves deeper than the table depth"
    matrix = explainer.transformer_matrix(frame.head(50))
    expected = np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(matrix))
    np.testing.assert_allclose(deep.column_contributions(matrix), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(explainer.column_contributions(matrix), expected, rtol=0, atol=1e-6)


def test_trees_too_large_for_a_cell_table_and_records_with_a_missing_value_are_explained_leaf_by_leaf(
    settings, features, sample_frame
):
    import shap

    from german_credit_scoring.explain.contributions import TreeContributions

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=30)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    width = explainer.transformer.width
    matrix = explainer.transformer_matrix(frame.head(60))
    expected = np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(matrix))
    # given a cell limit that leaves some trees out of the cell tables (and one that leaves all out)
    for limit in (64, 0):
        mixed = TreeContributions(pipeline[-1], width, cell_limit=limit)
        assert mixed.rest is not None and mixed.cell_trees < 30
        # then every tree is still explained exactly
        np.testing.assert_allclose(mixed.column_contributions(matrix), expected, rtol=0, atol=1e-6)
    # given records with a missing model column (the tree's own missing-value direction applies)
    tree = TreeContributions(pipeline[-1], width)
    assert tree.cell_trees == 30 and tree.rest is None
    holes = matrix.copy()
    holes[::3, np.unique(tree.used)[:4]] = np.nan
    # then they are explained exactly too: contributions add up to the model's own log-odds
    values = tree.column_contributions(holes)
    margins = pipeline[-1].decision_function(holes)
    np.testing.assert_allclose(tree.base_value + values.sum(axis=1), margins, rtol=0, atol=1e-9)
    np.testing.assert_allclose(values[1::3], expected[1::3], rtol=0, atol=1e-6)


def test_leaf_game_is_shapley_by_enumeration():
    from itertools import combinations
    from math import factorial

    rng = np.random.default_rng(0)
    d = 4
    zero = rng.uniform(0.1, 0.9, size=(1, d))
    agree = np.array([[[1.0, 0.0, 1.0, 1.0]]])
    value = np.array([0.7])

    def game(coalition):
        return value[0] * np.prod([agree[0, 0, k] if k in coalition else zero[0, k] for k in range(d)])

    expected = []
    for i in range(d):
        others = [k for k in range(d) if k != i]
        total = 0.0
        for size in range(d):
            for subset in combinations(others, size):
                weight = factorial(size) * factorial(d - size - 1) / factorial(d)
                total += weight * (game({*subset, i}) - game(set(subset)))
        expected.append(total)
    np.testing.assert_allclose(leaf_shapley(value, zero, agree)[0, 0], expected, atol=1e-12)


def test_fast_path_gives_exactly_the_pipelines_probabilities(fitted, settings, features):
    # given the scorer's verified numpy transformer
    _, pipeline, frame = fitted
    scorer = _scorer(settings, features, pipeline)
    assert scorer.fast is not None
    columns = {name: frame[name].tolist() for name in scorer.input_names}
    # then it gives scikit-learn's probabilities bit for bit
    expected = pipeline.predict_proba(frame)[:, 1]
    assert np.array_equal(scorer.column_probabilities(columns), expected)


def test_fast_path_is_exact_when_scikit_learn_gives_a_column_major_matrix(settings, features, sample_frame):
    # given a model of the project's numeric inputs alone, untransformed: scikit-learn's model matrix is
    # then one scaled block in column-major order, and BLAS sums a product over it in another order
    from german_credit_scoring.contract import FeatureSet

    numeric = [f.model_copy(update={"transformation": None}) for f in features.model_inputs() if f.is_numeric]
    if len(numeric) < 2:
        pytest.skip("fewer than two numeric model inputs: a one-column matrix has a single layout")
    subset = FeatureSet(features=numeric)
    pipeline, frame = _fit(settings, subset, sample_frame, "logistic_regression")
    matrix = np.asarray(pipeline[0].transform(frame))
    assert matrix.flags.f_contiguous and not matrix.flags.c_contiguous
    scorer = _scorer(settings, subset, pipeline)
    assert scorer.fast is not None
    # then the fast path still gives scikit-learn's probabilities bit for bit
    columns = {name: frame[name].tolist() for name in scorer.input_names}
    assert np.array_equal(scorer.column_probabilities(columns), pipeline.predict_proba(frame)[:, 1])


def test_every_record_gets_reasons_towards_its_decision(fitted, settings, features):
    _, pipeline, frame = fitted
    scorer = _scorer(settings, features, pipeline)
    rows = frame.head(40)
    columns = {name: rows[name].tolist() for name in scorer.input_names}
    scores = scorer.score_columns(columns, top_k=3)
    _, values = contributions(pipeline, rows)
    positive = str(settings.data.positive_label)
    for row, (decision, reasons) in enumerate(zip(scores.decisions, scores.reasons, strict=True)):
        assert 0 < len(reasons) <= 3
        sign = 1 if decision == positive else -1
        pushed = [sign * r["contribution"] for r in reasons]
        assert all(p > 0 for p in pushed) and pushed == sorted(pushed, reverse=True)
        for reason in reasons:
            i = scorer.input_names.index(reason["feature"])
            assert reason["contribution"] == pytest.approx(values[row, i], abs=1e-9)
            value = columns[reason["feature"]][row]
            assert reason["value"] == (None if value != value else value)  # a missing value is null
            assert reason["phrase"] == phrase(features.get(reason["feature"]))
    assert scores.unexplained == [None] * len(rows)


def test_reasons_as_json_are_the_reasons(fitted, settings, features):
    _, pipeline, frame = fitted
    scorer = _scorer(settings, features, pipeline)
    rows = frame.head(25)
    columns = {name: rows[name].tolist() for name in scorer.input_names}
    as_dicts = scorer.score_columns(columns, top_k=4)
    as_json = scorer.score_columns(columns, top_k=4, as_json=True)
    assert [json.loads(r) for r in as_json.reasons] == as_dicts.reasons


def test_sensitive_features_are_never_reasons(settings, features, sample_frame):
    sensitive = [f.name for f in features.features if f.sensitive]
    if not sensitive:
        pytest.skip("the contract declares no sensitive feature")
    # given a model allowed to use the sensitive features as inputs
    for model_type in MODEL_TYPES:
        pipeline, frame = _fit(settings, features, sample_frame, model_type, include_sensitive=True)
        scorer = _scorer(settings, features, pipeline, include_sensitive=True)
        assert_never_reasons(scorer, pipeline, frame, sensitive)


def assert_never_reasons(scorer, pipeline, frame, sensitive: list[str]) -> None:
    """The sensitive inputs contribute to the explained log-odds, yet with every input a reason (k = all
    inputs) none of them is ever one, in the reasons and in their JSON text."""
    columns = {name: frame[name].tolist() for name in scorer.input_names}
    _, values = contributions(pipeline, frame)
    assert np.abs(values[:, [scorer.input_names.index(n) for n in sensitive]]).max() > 0
    scores = scorer.score_columns(columns, top_k=len(scorer.input_names))
    named = {reason["feature"] for reasons in scores.reasons for reason in reasons}
    assert named and not named & set(sensitive)
    as_json = scorer.score_columns(columns, top_k=len(scorer.input_names), as_json=True).reasons
    assert not {r["feature"] for text in as_json for r in json.loads(text)} & set(sensitive)


def test_phrase_falls_back_to_the_description_then_the_name(features):
    feature = features.features[0]
    assert phrase(feature.model_copy(update={"reason": "Short phrase"})) == "Short phrase"
    assert phrase(feature.model_copy(update={"reason": "", "description": "Described"})) == "Described"
    bare = feature.model_copy(update={"reason": "", "description": "", "name": "loan_duration-months"})
    assert phrase(bare) == "Loan duration months"


def test_reason_codes_keep_only_contributions_towards_the_decision(features):
    names = [f.name for f in features.model_inputs()][:3]
    codes = ReasonCodes(features, names, top_k=3)
    values = {name: ["a", "b"] for name in names}
    out = codes.reasons(np.array([[0.5, -0.2, 0.1], [0.5, -0.2, 0.1]]), [True, False], values)
    assert [r["feature"] for r in out[0]] == [names[0], names[2]]
    assert [r["feature"] for r in out[1]] == [names[1]]


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
def test_reasons_json_encodes_any_value_as_the_dicts_do(features, compiled):
    # given values JSON text must escape or turn into null: separators, newlines, quotes, NaN,
    # infinities and numpy scalars, and records with no reason at all
    inputs = features.model_inputs()
    if not any(f.allowed_values for f in inputs):
        pytest.skip("the contract declares no categorical model input: no text value to escape")
    # a category first (it takes the text values), then numbers (they take the non-finite ones)
    category = next(f for f in inputs if f.allowed_values)
    rest = sorted((f for f in inputs if f is not category), key=lambda f: not f.is_numeric)
    names = [f.name for f in [category, *rest]][:3]
    codes = ReasonCodes(features, names, top_k=2, compiled=compiled)
    assert codes.compiled == compiled  # numba is a dependency
    # (twice over: a batch of 10 is past SMALL_BATCH, written by the compiled loop or numpy's object array)
    values = {
        names[0]: ["a, b", 'line\nbreak "quoted"', float("nan"), np.int64(7), "é"] * 2,
        names[1]: [np.float64(1.5), float("inf"), None, 3, np.nan] * 2,
        names[2]: [1, 2, 3, 4, 5] * 2,
    }
    contributions = np.array(
        [[0.5, 0.25, -1.0], [0.5, 0.25, -1.0], [0.5, 0.25, -1.0], [-0.1, -0.2, -0.3], [1e-20, 2.5e6, 0.0]] * 2
    )
    towards = [True] * 10
    # when they are encoded as JSON text (as a batch, and record by record in plain Python)
    texts = codes.reasons_json(contributions, towards, values)
    one_by_one = [
        codes.reasons_json(
            contributions[i : i + 1], towards[i : i + 1], {n: v[i : i + 1] for n, v in values.items()}
        )[0]
        for i in range(10)
    ]
    assert one_by_one == texts
    # then each record's text decodes to its reasons as dicts (non-finite values as null)
    dicts = codes.reasons(contributions, towards, values)
    assert len(texts) == 10 and texts[3] == texts[8] == b"[]"
    for text, expected in zip(texts, dicts, strict=True):
        decoded = json.loads(text)
        for reason in expected:
            value = reason["value"]
            if isinstance(value, float) and not np.isfinite(value):
                reason["value"] = None
        assert decoded == expected
    assert json.loads(texts[1])[0]["value"] == 'line\nbreak "quoted"'
    assert [r["value"] for r in json.loads(texts[4])] == [None, "é"]
    # contributions to 9 decimals, the same number in both
    assert [r["contribution"] for r in json.loads(texts[4])] == [2.5e6, 0.0]
    assert [r["contribution"] for r in json.loads(texts[0])] == [0.5, 0.25]


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
def test_reason_contributions_are_the_contributions_to_nine_decimals(features, compiled):
    names = [f.name for f in features.model_inputs()][:2]
    codes = ReasonCodes(features, names, top_k=2, compiled=compiled)
    rng = np.random.default_rng(7)
    contributions = rng.normal(scale=3.0, size=(500, 2)) * rng.choice([1e-9, 1e-4, 1.0, 40.0], size=(500, 1))
    towards = contributions[:, 0] > 0
    values = {name: list(range(500)) for name in names}
    texts = codes.reasons_json(contributions, towards, values)
    dicts = codes.reasons(contributions, towards, values)
    # a few records at a time (assembled in plain Python) give the same text as a whole batch
    few = [
        text
        for start in range(0, 500, 5)
        for text in codes.reasons_json(
            contributions[start : start + 5],
            towards[start : start + 5],
            {name: column[start : start + 5] for name, column in values.items()},
        )
    ]
    assert few == texts
    for row, (text, expected) in enumerate(zip(texts, dicts, strict=True)):
        assert json.loads(text) == expected
        for reason in expected:
            exact = contributions[row, names.index(reason["feature"])]
            assert abs(reason["contribution"] - exact) <= 5e-10 + 1e-15 * abs(exact)
            assert reason["contribution"] == round(float(exact), 9)


def test_compiled_top_k_is_numpys_stable_order_with_ties_and_ineligible_inputs(features):
    # given contributions full of ties (whole numbers), records of both decisions, and an ineligible input
    names = [f.name for f in features.model_inputs()]
    rng = np.random.default_rng(11)
    contributions = rng.integers(-3, 4, size=(600, len(names))).astype(np.float64)
    contributions[:5] = 0.0  # no reason at all
    towards = rng.random(600) < 0.5
    for top_k in (1, 3, len(names) + 2):
        compiled = ReasonCodes(features, names, top_k=top_k, compiled=True)
        plain = ReasonCodes(features, names, top_k=top_k)
        compiled.eligible[0] = plain.eligible[0] = False
        # when both choose each record's reasons
        order, keep = compiled.select(contributions, towards)
        expected_order, expected_keep = plain.select(contributions, towards)
        # then they choose the same inputs in the same order: strongest first, ties to the lower index
        assert np.array_equal(keep, expected_keep)
        assert np.array_equal(np.where(keep, order, -1), np.where(expected_keep, expected_order, -1))
        assert not keep[:5].any() and not (keep & (order == 0)).any()
        signed = np.where(towards[:, None], contributions, -contributions)
        chosen = np.take_along_axis(signed, order, axis=1)
        for row in range(600):
            kept = order[row][keep[row]].tolist()
            values = [signed[row, i] for i in kept]
            assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
            ranked = sorted(
                (i for i in range(1, len(names)) if signed[row, i] > 0), key=lambda i: (-signed[row, i], i)
            )
            assert kept == ranked[:top_k]
        assert (chosen[keep] > 0).all()


def test_compiled_reason_text_is_the_numpy_text_byte_for_byte(settings, features, sample_frame):
    # given the project's own records and contributions, every input a possible reason
    names = [f.name for f in features.model_inputs()]
    columns = {name: sample_frame[name].tolist() for name in names}
    rng = np.random.default_rng(3)
    contributions = rng.normal(scale=0.4, size=(len(sample_frame), len(names)))
    towards = rng.random(len(sample_frame)) < 0.5
    # when both paths write the reasons' JSON text
    compiled = ReasonCodes(features, names, top_k=4, compiled=True)
    plain = ReasonCodes(features, names, top_k=4)
    assert compiled.compiled and not plain.compiled
    from german_credit_scoring.explain import kernels, reasons

    assert kernels.SCALE == reasons.SCALE  # both write 9 decimals
    # then the texts are the same bytes, and they are the reasons
    texts = compiled.reasons_json(contributions, towards, columns)
    assert texts == plain.reasons_json(contributions, towards, columns)
    dicts = plain.reasons(contributions, towards, columns)
    assert [json.loads(text) for text in texts[:50]] == json.loads(json.dumps(dicts[:50]))


def test_a_model_without_an_exact_explainer_still_decides(settings, features, sample_frame):
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    # given a pipeline whose estimator has no exact explainer here
    x = data.model_frame(sample_frame, features)
    y = data.positive_indicator(sample_frame[settings.data.target], settings.data.positive_label)
    pipeline = Pipeline(
        [("transform", transform.build_transformer(features)), ("model", DecisionTreeClassifier(max_depth=3))]
    ).fit(x, y)
    with pytest.raises(ExplanationUnavailable, match="DecisionTreeClassifier"):
        PipelineExplainer(pipeline, list(x.columns))
    scorer = _scorer(settings, features, pipeline)
    columns = {name: x[name].head(5).tolist() for name in scorer.input_names}
    # when scored with reasons on, every record keeps its decision and says why it has no reasons
    scores = scorer.score_columns(columns, top_k=4)
    assert np.array_equal(scores.probabilities, pipeline.predict_proba(x.head(5))[:, 1])
    assert len(scores.decisions) == 5 and scores.reasons == [[]] * 5
    assert all("DecisionTreeClassifier" in reason for reason in scores.unexplained)


def test_a_record_that_cannot_be_explained_keeps_its_decision(fitted, settings, features, monkeypatch):
    _, pipeline, frame = fitted
    scorer = _scorer(settings, features, pipeline)
    rows = frame.head(4)
    columns = {name: rows[name].tolist() for name in scorer.input_names}
    expected = scorer.score_columns(columns, top_k=2)
    original = scorer.explainer.contributions

    def broken_for_row_two(matrix, *prepared):  # e.g. an overflow in one record's contributions
        values = original(matrix, *prepared)
        values[2, 0] = np.inf
        return values

    monkeypatch.setattr(scorer.explainer, "contributions", broken_for_row_two)
    scores = scorer.score_columns(columns, top_k=2, as_json=True)
    assert scores.decisions == expected.decisions and scores.probabilities == expected.probabilities
    assert scores.reasons[2] == b"[]" and "could not be computed exactly" in scores.unexplained[2]
    assert [json.loads(r) for i, r in enumerate(scores.reasons) if i != 2] == [
        r for i, r in enumerate(expected.reasons) if i != 2
    ]

    def broken(matrix, *prepared):
        raise FloatingPointError("overflow")

    monkeypatch.setattr(scorer.explainer, "contributions", broken)
    scores = scorer.score_columns(columns, top_k=2)
    assert scores.decisions == expected.decisions
    assert scores.reasons == [[]] * 4 and all("overflow" in text for text in scores.unexplained)


# --------------------------------------------------------------------------------------------
# Tree tables as the model's own prediction
# --------------------------------------------------------------------------------------------


def test_tree_tables_give_the_models_log_odds_bit_for_bit(settings, features, sample_frame):
    from german_credit_scoring.explain.contributions import TreeContributions

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting")
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    tree = explainer.explainer
    assert isinstance(tree, TreeContributions) and tree.predicts and tree.rest is None
    estimator = pipeline[-1]
    matrix = explainer.transformer_matrix(frame)
    # given records with values exactly at the model's thresholds and the doubles either side of them
    probe = tree.probe()
    thresholds = np.unique(
        np.concatenate([t.nodes["num_threshold"][t.nodes["is_leaf"] == 0] for t in tree._trees])
    )
    assert np.isin(thresholds, probe).all()
    assert np.isin(np.nextafter(thresholds, np.inf), probe).all()
    assert np.isin(np.nextafter(thresholds, -np.inf), probe).all()
    # then the tables' log-odds are scikit-learn's, bit for bit, in a batch, one record at a time, in
    # passes summed tree by tree and in short ones accumulated (SEQUENTIAL_MIN), and through probabilities
    from german_credit_scoring.explain.contributions import ROWS_PER_PASS, SEQUENTIAL_MIN

    long = np.vstack([matrix, probe, matrix])[: 4 * ROWS_PER_PASS + SEQUENTIAL_MIN + 1]
    assert len(long) == 4 * ROWS_PER_PASS + SEQUENTIAL_MIN + 1
    short = (matrix[: SEQUENTIAL_MIN - 1], probe[:SEQUENTIAL_MIN], long[: 4 * ROWS_PER_PASS + 1])
    for records in (matrix, probe, matrix[:1], probe[-1:], long, *short):
        margins, cells = tree.margins(records)
        assert cells is not None and np.array_equal(margins, estimator.decision_function(records))
    from scipy.special import expit

    assert np.array_equal(expit(tree.margins(matrix)[0]), estimator.predict_proba(matrix)[:, 1])
    # and a record with a missing value is left to scikit-learn (its direction is not an interval)
    holes = matrix[:5].copy()
    holes[2, tree.used[0]] = np.nan
    assert tree.margins(holes) == (None, None)


def test_tree_tables_work_in_passes(settings, features, sample_frame, monkeypatch):
    import german_credit_scoring.explain.contributions as module

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=25)
    reference = PipelineExplainer(pipeline, list(frame.columns))
    matrix = reference.transformer_matrix(frame.head(40))
    expected = reference.contributions(matrix)
    # given passes of 7 records (40 records: five full passes and a short one)
    monkeypatch.setattr(module, "ROWS_PER_PASS", 7)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    margins, cells = explainer.margins(matrix)
    assert np.array_equal(margins, pipeline[-1].decision_function(matrix))
    np.testing.assert_allclose(explainer.contributions(matrix, cells), expected, rtol=0, atol=1e-12)
    # and tables of model columns (no owner given) too, against the leaf-by-leaf values
    columns = module.TreeContributions(pipeline[-1], reference.transformer.width)
    assert columns.per_column and columns.rest is None
    np.testing.assert_allclose(
        columns.column_contributions(matrix), columns.leaves.column_contributions(matrix), rtol=0, atol=1e-12
    )


def test_compiled_sums_are_the_numpy_sums_and_do_not_depend_on_the_batch(settings, features, sample_frame):
    from german_credit_scoring.explain import kernels

    # given the tree model's tables, summed by the compiled loop (numba is a dependency)
    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=40)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    tree = explainer.explainer
    assert kernels.table_sums is not None and tree.kernel is kernels.table_sums
    matrix = explainer.transformer_matrix(frame)
    _, cells = tree.margins(matrix)
    compiled = tree._tables(cells)
    # when the same cells are summed by the numpy path (take and bincount)
    tree.kernel = None
    counted = tree._tables(cells)
    # then both give the same contributions, which reproduce the log-odds
    np.testing.assert_allclose(compiled, counted, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        tree.base_value + compiled.sum(axis=1), pipeline[-1].decision_function(matrix), rtol=0, atol=1e-9
    )
    # and a record's contributions alone are its contributions in the batch, bit for bit
    tree.kernel = kernels.table_sums
    for row in (0, 17, len(frame) - 1):
        assert np.array_equal(tree._tables(cells[:, row : row + 1]), compiled[row : row + 1])
    # and a tree model's reasons are written by the compiled loop too, a linear model's by numpy
    assert explainer.compiled
    linear, _ = _fit(settings, features, sample_frame, "logistic_regression")
    assert not PipelineExplainer(linear, list(frame.columns)).compiled


def test_without_numba_trees_are_explained_by_numpy(settings, features, sample_frame, monkeypatch):
    import importlib
    import sys

    from german_credit_scoring.explain import kernels

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=25)
    matrix = PipelineExplainer(pipeline, list(frame.columns)).transformer_matrix(frame.head(50))
    expected = PipelineExplainer(pipeline, list(frame.columns)).contributions(matrix)
    # given a platform where numba cannot be imported
    monkeypatch.setitem(sys.modules, "numba", None)
    try:
        importlib.reload(kernels)
        assert kernels.table_sums is None
        # when a tree model is explained
        explainer = PipelineExplainer(pipeline, list(frame.columns))
        # then it uses the numpy path, to the same contributions
        assert explainer.explainer.kernel is None
        np.testing.assert_allclose(explainer.contributions(matrix), expected, rtol=0, atol=1e-12)
    finally:
        monkeypatch.undo()
        importlib.reload(kernels)
    assert kernels.table_sums is not None


def test_tables_per_input_sum_the_model_columns_of_each_input(settings, features, sample_frame):
    from german_credit_scoring.explain.contributions import TreeContributions

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=25)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    transformer = explainer.transformer
    matrix = explainer.transformer_matrix(frame.head(60))
    # given the same trees tabled per model column and per input feature
    per_column = TreeContributions(pipeline[-1], transformer.width)
    per_input = TreeContributions(
        pipeline[-1], transformer.width, owner=transformer.owner, outputs=len(transformer.input_names)
    )
    assert per_column.per_column and per_input.per_column == (
        transformer.width == len(transformer.input_names)
    )
    # then the per-input tables are the per-column values summed per input
    np.testing.assert_allclose(
        per_input.contributions(matrix),
        transformer.group(per_column.column_contributions(matrix)),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="owner must map"):
        TreeContributions(pipeline[-1], transformer.width, owner=transformer.owner[:-1])


def test_scorer_predicts_trees_from_their_tables_only_when_verified(
    settings, features, sample_frame, monkeypatch
):
    from german_credit_scoring.explain import contributions as module

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=40)
    columns = {name: frame[name].tolist() for name in frame.columns}
    expected = pipeline.predict_proba(frame)[:, 1]
    scorer = _scorer(settings, features, pipeline)
    assert scorer.fast is not None and scorer.table_margins
    # the tables give the probabilities, with reasons on and off alike
    assert np.array_equal(scorer.score_columns(columns).probabilities, expected)
    scores = scorer.score_columns(columns, top_k=3)
    assert np.array_equal(scores.probabilities, expected) and scores.unexplained == [None] * len(frame)
    calls = []
    original = module.TreeContributions.margins

    def counted(self, matrix):
        calls.append(len(matrix))
        return original(self, matrix)

    monkeypatch.setattr(module.TreeContributions, "margins", counted)
    scorer.score_columns(columns, top_k=3)
    assert calls == [len(frame)]  # one pass over the trees serves the prediction and its explanation
    monkeypatch.undo()

    # given tables whose log-odds are one ulp off: the check at load refuses them, scikit-learn predicts
    def off_by_one_ulp(self, cells):
        return np.nextafter(original_margins(self, cells), np.inf)

    original_margins = module.TreeContributions.margins_of
    monkeypatch.setattr(module.TreeContributions, "margins_of", off_by_one_ulp)
    refused = _scorer(settings, features, pipeline)
    assert refused.fast is not None and not refused.table_margins
    assert np.array_equal(refused.score_columns(columns, top_k=3).probabilities, expected)
    monkeypatch.undo()

    # given trees too large for a table: no log-odds from the tables, still scikit-learn's probabilities
    monkeypatch.setattr(module, "CELL_TABLE_LIMIT", 64)
    partial = _scorer(settings, features, pipeline)
    assert partial.explainer.explainer.rest is not None and not partial.table_margins
    scores = partial.score_columns(columns, top_k=3)
    assert np.array_equal(scores.probabilities, expected) and scores.unexplained == [None] * len(frame)


def test_one_hot_inputs_are_cell_states(settings, features, sample_frame):
    import shap

    from german_credit_scoring.explain.contributions import TreeContributions

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=40)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    transformer, tree = explainer.transformer, explainer.explainer
    if not any(np.sum(transformer.owner == i) > 1 for i in transformer.one_hot):
        pytest.skip("no one-hot input with several categories")
    # given tables where a one-hot input's k split columns are k + 1 states (one category or none)
    stated = np.unique(tree.states[tree.states >= 0])
    assert stated.size and set(stated.tolist()) <= set(transformer.one_hot)
    intervals = TreeContributions(
        pipeline[-1], transformer.width, owner=transformer.owner, outputs=len(transformer.input_names)
    )
    assert (intervals.states < 0).all() and tree.leaf.size < intervals.leaf.size  # fewer cells
    matrix = explainer.transformer_matrix(frame)
    expected = transformer.group(np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(matrix)))
    # then contributions and log-odds are the interval tables' and shap's
    margins, cells = tree.margins(matrix)
    assert np.array_equal(margins, pipeline[-1].decision_function(matrix))
    np.testing.assert_allclose(tree.contributions(matrix, cells), intervals.contributions(matrix), atol=1e-12)
    np.testing.assert_allclose(tree.contributions(matrix, cells), expected, rtol=0, atol=1e-6)
    # and the threshold probe keeps one category per input, so it is checked through the tables
    probe = tree.probe()
    assert not tree.several(tree._bins(probe)).any()
    assert np.array_equal(tree.margins(probe)[0], pipeline[-1].decision_function(probe))

    # given records no encoder makes (two categories of one input at once) among ordinary ones
    split = [c for c in np.nonzero(tree.states == stated[0])[0] if c in tree.used]
    if len(split) < 2:
        return  # the trees split on one category of it only: nothing to combine
    odd = matrix[:30].copy()
    odd[::2, split[:2]] = 1.0  # every other record: two categories of one input at once
    assert tree.several(tree._bins(odd)).any() and not tree.several(tree._bins(odd[1::2])).any()
    # then they have no cell: scikit-learn predicts them, and they are explained leaf by leaf, exactly
    assert tree.margins(odd) == (None, None)
    oracle = transformer.group(np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(odd)))
    np.testing.assert_allclose(tree.contributions(odd), oracle, rtol=0, atol=1e-6)
    np.testing.assert_allclose(explainer.contributions(odd), oracle, rtol=0, atol=1e-6)


def test_only_inputs_split_at_one_threshold_per_column_become_states(settings, features, sample_frame):
    from german_credit_scoring.explain.contributions import TreeContributions

    pipeline, frame = _fit(settings, features, sample_frame, "hist_gradient_boosting", max_iter=25)
    explainer = PipelineExplainer(pipeline, list(frame.columns))
    transformer = explainer.transformer
    # given every input declared one-hot, numeric ones included
    tree = TreeContributions(
        pipeline[-1],
        transformer.width,
        owner=transformer.owner,
        outputs=len(transformer.input_names),
        one_hot=range(len(transformer.input_names)),
    )
    # then a column split at more than one threshold keeps its intervals, and its input all of them
    cuts: dict[int, set[float]] = {}
    for t in tree._trees:
        splits = t.nodes[t.nodes["is_leaf"] == 0]
        for f, c in zip(splits["feature_idx"].tolist(), splits["num_threshold"].tolist(), strict=True):
            cuts.setdefault(f, set()).add(c)
    several = {int(transformer.owner[f]) for f, c in cuts.items() if len(c) > 1}
    if not several:  # one-hot columns split at 0.5 only: data without a numeric input has nothing to test
        pytest.skip("no input of this data set is split at several thresholds (no numeric input)")
    assert not set(tree.states[tree.states >= 0].tolist()) & several
    # and the results stay exact
    matrix = explainer.transformer_matrix(frame.head(200))
    margins, cells = tree.margins(matrix)
    assert np.array_equal(margins, pipeline[-1].decision_function(matrix))
    np.testing.assert_allclose(
        tree.contributions(matrix, cells), explainer.contributions(matrix), rtol=0, atol=1e-12
    )
