"""Production beside the candidate on the same rows, and mitigation as settings, on a data set made here
where the unmitigated model fails demographic parity and a mitigated one passes."""

from __future__ import annotations

import json
import subprocess

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from german_credit_scoring.contract import FeatureDefinition, FeatureSet, dump_features
from german_credit_scoring.data import model_frame, positive_indicator
from german_credit_scoring.explain import compare as cmp
from german_credit_scoring.explain.mitigation import fit_servable, reweighing_weights
from german_credit_scoring.lifecycle import gate
from german_credit_scoring.lifecycle.transform import build_transformer
from german_credit_scoring.settings import parse_settings

TARGET, POSITIVE = "outcome", "default"
FEATURES = FeatureSet(
    features=[
        FeatureDefinition(name="income", dtype="float"),
        FeatureDefinition(name="district", dtype="category", allowed_values=["north", "south"]),
        FeatureDefinition(name="tenure", dtype="float"),
        FeatureDefinition(name="gender", dtype="category", allowed_values=["f", "m"], sensitive=True),
    ]
)
DP_LIMIT = 0.10


def settings_for(tmp_path, mitigation="none", **fairness):
    dump_features(FEATURES, tmp_path / "features.yaml")
    raw = {
        "project": {"name": "Made-up lending", "slug": "made-up"},
        "data": {
            "path": str(tmp_path / "raw.csv"),
            "target": TARGET,
            "positive_label": POSITIVE,
            "protected_attributes": [{"name": "gender"}],
        },
        "features": str(tmp_path / "features.yaml"),
        "model": {"type": "logistic_regression", "logistic_regression": {"C": 1.0, "max_iter": 1000}},
        "evaluation": {"cost": {"false_negative": 1, "false_positive": 1}, "slices": ["district"]},
        "fairness": {"mitigation": mitigation, "bootstrap": 200, **fairness},
        "gate": {"max_regression": {"roc_auc": 0.02}},
    }
    return parse_settings(raw)


def biased(n: int, seed: int) -> pd.DataFrame:
    """Defaults depend on gender through district (a proxy) and income: parity fails unmitigated."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["f", "m"], size=n)
    district = np.where(rng.random(n) < np.where(gender == "f", 0.85, 0.15), "south", "north")
    income = rng.normal(size=n) - 0.8 * (gender == "f")
    tenure = rng.normal(size=n)
    logit = -0.2 - 1.2 * income + 1.5 * (district == "south") - 0.3 * tenure
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), POSITIVE, "repaid")
    frame = pd.DataFrame({"income": income, "district": district, "tenure": tenure, "gender": gender})
    frame[TARGET] = outcome
    frame["group__gender"] = gender
    return frame


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("made")
    train, test = biased(4000, 1), biased(2000, 2)
    train.to_parquet(tmp / "train.parquet")
    test.to_parquet(tmp / "test.parquet")
    return tmp, train, test


def save_model(directory, pipeline, settings, version):
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, directory / "model.joblib")
    meta = {
        "version": version,
        "threshold": settings.decision_threshold,
        "features": ["income", "district", "tenure"],
    }
    (directory / "model.json").write_text(json.dumps(meta))


def trained(settings, train, method="none"):
    transformer = build_transformer(FEATURES).fit(model_frame(train, FEATURES))
    return fit_servable(transformer, train, FEATURES, settings, method)


def dp_check(column) -> gate.Check:
    fairness = {
        "gender": {
            "demographic_parity_difference": column.fairness["gender"]["demographic_parity_difference"]
        }
    }
    (check,) = gate.fairness_checks(fairness, {"demographic_parity_difference": DP_LIMIT}, {})
    return check


def test_unmitigated_fails_parity_and_exponentiated_gradient_passes_side_by_side(made):
    tmp, train, _ = made
    settings = settings_for(tmp)
    save_model(tmp / "candidate", trained(settings, train), settings, "cand")
    result = cmp.compare(
        settings, tmp / "candidate", tmp / "no-production", tmp / "test.parquet", tmp / "train.parquet",
        ["reweighing", "exponentiated_gradient", "threshold_optimizer", "correlation_remover"],
    )  # fmt: skip
    by_name = {c.name: c for c in result.columns}
    assert not dp_check(by_name["candidate"]).passed
    assert dp_check(by_name["exponentiated_gradient"]).passed
    assert dp_check(by_name["threshold_optimizer"]).passed
    # every option shows cost, AUC and the fairness figures; only servable ones are marked so
    for column in result.columns:
        assert column.overall["expected_cost"] is not None and column.overall["roc_auc"] is not None
        assert set(column.fairness["gender"]) >= {
            "demographic_parity_difference",
            "equalized_odds_difference",
        }
    assert not by_name["threshold_optimizer"].servable and not by_name["correlation_remover"].servable
    assert by_name["exponentiated_gradient"].servable and by_name["reweighing"].servable
    text = cmp.render_markdown(result)
    assert "No production model available" in text and "unlawful in US credit" in text
    for name in by_name:
        assert f"| {name} |" in text or f" {name} |" in text


def test_a_mitigated_candidate_keeps_the_serving_pipeline_shape(made, tmp_path):
    _, train, test = made
    settings = settings_for(tmp_path, mitigation="exponentiated_gradient")
    pipeline = trained(settings, train, "exponentiated_gradient")
    joblib.dump(pipeline, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    inputs = model_frame(test, FEATURES)
    scores = loaded.predict_proba(inputs)[:, 1]
    assert [name for name, _ in loaded.steps] == ["transform", "model"]
    assert ((scores >= 0) & (scores <= 1)).all()
    decisions = scores >= settings.decision_threshold
    rates = pd.Series(decisions).groupby(test["gender"].to_numpy()).mean()
    assert rates.max() - rates.min() <= DP_LIMIT
    # one record at a time, as the service scores it
    assert loaded.predict_proba(inputs.iloc[[0]])[0, 1] == pytest.approx(scores[0])


def test_reweighing_makes_group_and_outcome_independent_once_weighted(made):
    _, train, _ = made
    labels = positive_indicator(train[TARGET], POSITIVE)
    weights = reweighing_weights(labels, train[["group__gender"]])
    frame = pd.DataFrame({"g": train["gender"], "y": labels, "w": weights})
    weighted_rate = frame.groupby("g").apply(
        lambda p: np.average(p["y"], weights=p["w"]), include_groups=False
    )
    assert weighted_rate.max() - weighted_rate.min() < 1e-9
    assert frame.groupby("g")["y"].mean().pipe(lambda r: r.max() - r.min()) > 0.1  # unweighted they differ


def test_production_is_scored_on_the_same_rows_and_the_change_is_shown(made):
    tmp, train, test = made
    settings = settings_for(tmp)
    save_model(tmp / "cand2", trained(settings, train), settings, "cand")
    older = trained(settings, train.head(300))
    save_model(tmp / "prod", older, settings, "prod")
    result = cmp.compare(
        settings, tmp / "cand2", tmp / "prod", tmp / "test.parquet", tmp / "train.parquet", []
    )
    production = result.column("production")
    assert production is not None and result.production_note is None
    labels = positive_indicator(test[TARGET], POSITIVE)
    expected = roc_auc_score(labels, older.predict_proba(model_frame(test, FEATURES))[:, 1])
    assert production.overall["roc_auc"] == pytest.approx(expected)
    assert production.overall["n"] == result.column("candidate").overall["n"] == len(test)
    text = cmp.render_markdown(result)
    candidate = result.column("candidate")
    for key in ("roc_auc", "expected_cost"):
        shown = cmp.change(key, candidate.overall[key], production.overall[key])
        assert f"| {key} | {candidate.overall[key]:.3f} | {production.overall[key]:.3f} | {shown} |" in text
    assert (
        cmp.change("expected_cost", 0.5, 0.6) == "-0.100 ✅" and cmp.change("roc_auc", 0.5, 0.6) == "-0.100 ⚠️"
    )
    assert "Per slice: candidate vs production" in text and "change against production" in text
    # the gate's regression limits, applied to production scored on the same rows
    auc_check = next(c for c in result.regression if c["name"] == "roc_auc regression")
    assert auc_check["value"] == pytest.approx(production.overall["roc_auc"] - candidate.overall["roc_auc"])
    assert "Regression on these rows" in text


def test_cli_without_production_succeeds_and_without_candidate_is_bad_input(made, tmp_path, monkeypatch):
    tmp, train, _ = made
    settings = settings_for(tmp)
    save_model(tmp / "cand3", trained(settings, train), settings, "cand")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())))
    common = [
        "--params",
        str(params),
        "--test",
        str(tmp / "test.parquet"),
        "--output-dir",
        str(tmp_path),
        "--variants",
    ]
    assert (
        cmp.compare_cli(["--candidate", str(tmp / "cand3"), "--production", str(tmp_path / "none"), *common])
        == 0
    )
    record = cmp.Comparison.model_validate_json((tmp_path / "compare.json").read_text())
    assert record.column("production") is None and "not found" in record.production_note
    assert cmp.compare_cli(["--candidate", str(tmp_path / "missing"), *common]) == 2


def test_production_is_restored_from_the_dvc_cache_by_the_hash_in_mains_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"model.joblib": b"model bytes", "model.json": b'{"version": "v0"}'}
    listing = []
    for name, blob in files.items():
        import hashlib

        md5 = hashlib.md5(blob).hexdigest()
        (tmp_path / ".dvc/cache/files/md5" / md5[:2]).mkdir(parents=True, exist_ok=True)
        (tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).write_bytes(blob)
        listing.append({"md5": md5, "relpath": name})
    dir_md5 = "ab" + "0" * 30 + ".dir"
    (tmp_path / ".dvc/cache/files/md5/ab").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".dvc/cache/files/md5/ab" / dir_md5[2:]).write_text(json.dumps(listing))
    lock = {"schema": "2.0", "stages": {"gate": {"outs": [{"path": "models/approved", "md5": dir_md5}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for args in (["init", "-q", "-b", "main"], ["add", "dvc.lock"], ["commit", "-q", "-m", "lock"]):
        subprocess.run(["git", *args], check=True, capture_output=True)
    assert cmp.restore_from_dvc_cache("main", tmp_path / "models/production") is None
    for name, blob in files.items():
        assert (tmp_path / "models/production" / name).read_bytes() == blob
    reason = cmp.restore_from_dvc_cache("no-such-ref", tmp_path / "models/other")
    assert reason and "no-such-ref" in reason and not (tmp_path / "models/other").exists()


def test_training_applies_the_configured_mitigation(made, tmp_path):
    from german_credit_scoring.explain.mitigation import MixtureClassifier
    from german_credit_scoring.lifecycle.training import fit

    _, train, _ = made
    transformer = build_transformer(FEATURES).fit(model_frame(train, FEATURES))
    plain = fit(transformer, train, FEATURES, settings_for(tmp_path))
    mitigated = fit(transformer, train, FEATURES, settings_for(tmp_path, mitigation="exponentiated_gradient"))
    assert not isinstance(plain[-1], MixtureClassifier)
    assert isinstance(mitigated[-1], MixtureClassifier) and mitigated[0] is transformer


def test_variants_without_protected_attributes_are_skipped_with_the_reason(made, tmp_path):
    tmp, train, _ = made
    settings = settings_for(tmp)
    save_model(tmp / "cand4", trained(settings, train), settings, "cand")
    raw = json.loads(settings.model_dump_json())
    raw["data"]["protected_attributes"] = []
    bare = parse_settings(raw)
    result = cmp.compare(
        bare, tmp / "cand4", None, tmp / "test.parquet", tmp / "train.parquet", ["reweighing"]
    )
    assert [c.name for c in result.columns] == ["candidate"]
    assert "protected attributes" in result.skipped_variants["reweighing"]
    assert "Variant `reweighing` was not trained" in cmp.render_markdown(result)


def test_the_comparison_reaches_the_pull_request_comment_within_githubs_limit(made, tmp_path, monkeypatch):
    from german_credit_scoring.gitops import reporting

    tmp, train, _ = made
    settings = settings_for(tmp)
    save_model(tmp / "cand5", trained(settings, train), settings, "cand")
    save_model(tmp / "prod5", trained(settings, train.head(500)), settings, "prod")
    result = cmp.compare(
        settings, tmp / "cand5", tmp / "prod5", tmp / "test.parquet", tmp / "train.parquet", []
    )
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/compare.md").write_text(cmp.render_markdown(result) * 40)  # a very long one
    section = reporting.load_section("compare", tmp_path / "reports")
    assert section.title == "Candidate beside production" and section.body
    text = reporting.render_comment(
        title="Model report", project="p", model_version="v", commit="c", sections=[section]
    )
    assert len(text) <= reporting.DEFAULT_LIMIT and "Candidate beside production" in text
