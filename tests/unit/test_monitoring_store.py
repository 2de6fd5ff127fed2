"""Prediction logs: partitions, redaction of identifying fields, shipping, retention, the drift window."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.errors import DataError
from german_credit_scoring.monitoring import lineage as lineage_mod
from german_credit_scoring.monitoring import window
from german_credit_scoring.monitoring.commands import EXIT_BAD_INPUT, EXIT_CRASH, drift_check_cli
from german_credit_scoring.monitoring.prediction_log import (
    PredictionLog,
    Redactor,
    make_rows,
    read_prediction_log,
)
from german_credit_scoring.monitoring.store import PREDICTIONS, Store, prune, read_window, ship

TODAY = date(2026, 3, 10)


def _stamp(day: date) -> str:
    return f"{day.isoformat()}T12:00:00.000Z"


def _log(sink: PredictionLog, day: date, version: str, rows: list[dict], request: str = "r") -> None:
    outputs = [{"probability": 0.3, "decision": "no"}] * len(rows)
    assert sink.append(make_rows(request, version, rows, outputs, _stamp(day)))


def test_rows_land_in_date_and_model_version_partitions(tmp_path):
    sink = PredictionLog(tmp_path / "log")
    _log(sink, TODAY, "v1", [{"x": 1}])
    _log(sink, TODAY, "v2/beta", [{"x": 2}])
    _log(sink, TODAY - timedelta(days=1), "v1", [{"x": 3}])
    folders = sorted(str(p.parent.relative_to(tmp_path / "log")) for p in (tmp_path / "log").rglob("*.jsonl"))
    assert folders == [
        "date=2026-03-09/model_version=v1",
        "date=2026-03-10/model_version=v1",
        "date=2026-03-10/model_version=v2_beta",
    ]
    assert sorted(read_prediction_log(tmp_path / "log")["x"]) == [1, 2, 3]


def test_identifying_fields_are_hashed_with_a_key_or_dropped(tmp_path):
    contract = FeatureSet(
        features=[
            FeatureDefinition(name="customer_no", dtype="category", identifying=True),
            FeatureDefinition(name="amount", dtype="float"),
        ]
    )
    assert contract.identifying == ["customer_no"]
    record = {"customer_no": "C-1001", "amount": 5.0}
    hashed = Redactor(contract.identifying, "hash", "salt-a").redact(record)
    again = Redactor(contract.identifying, "hash", "salt-a").redact(record)
    other_salt = Redactor(contract.identifying, "hash", "salt-b").redact(record)
    assert hashed["amount"] == 5.0
    assert hashed["customer_no"] != "C-1001" and "C-1001" not in json.dumps(hashed)
    assert hashed == again and other_salt["customer_no"] != hashed["customer_no"]
    assert "customer_no" not in Redactor(contract.identifying, "drop").redact(record)
    # no salt: a plain hash could be reversed by guessing, so the field is dropped
    assert "customer_no" not in Redactor(contract.identifying, "hash", None).redact(record)
    # both write paths redact before anything reaches the disk
    sink = PredictionLog(tmp_path / "log", redactor=Redactor(contract.identifying, "hash", "salt-a"))
    _log(sink, TODAY, "v1", [record])
    sink.append_request("r2", "v1", _stamp(TODAY), [json.dumps(record).encode()], [0.4], ["no"])
    text = "".join(p.read_text() for p in (tmp_path / "log").rglob("*.jsonl"))
    assert "C-1001" not in text and text.count(hashed["customer_no"]) == 2


def test_ship_moves_closed_partitions_and_keeps_open_ones(tmp_path):
    source, store = tmp_path / "log", Store(tmp_path / "store")
    sink = PredictionLog(source)
    _log(sink, TODAY - timedelta(days=1), "v1", [{"x": 1}, {"x": 2}])
    _log(sink, TODAY, "v1", [{"x": 3}])
    result = ship(source, store, now=TODAY)
    assert result.shipped_files == 1 and result.shipped_partitions == ["date=2026-03-09/model_version=v1"]
    assert result.open_partitions == ["date=2026-03-10/model_version=v1"]
    assert not (source / "date=2026-03-09").exists()  # moved, not copied
    assert [r["x"] for r in read_window(store, TODAY - timedelta(days=1), TODAY).rows] == [1, 2]
    # today's file is rotated when asked: the writer's next row goes to a fresh file
    assert ship(source, store, include_open=True, now=TODAY, grace_seconds=0).shipped_files == 1
    _log(sink, TODAY, "v1", [{"x": 4}])
    assert ship(source, store, include_open=True, now=TODAY, grace_seconds=0).shipped_files == 1
    rows = read_window(store, TODAY, TODAY).rows
    assert sorted(r["x"] for r in rows) == [3, 4]
    assert len(store.files(PREDICTIONS)) == 3  # no file overwrote another


def test_retention_deletes_expired_partitions_in_the_store_and_locally(tmp_path):
    source, store = tmp_path / "log", Store(tmp_path / "store")
    sink = PredictionLog(source)
    for age in (0, 5, 30, 31, 40):
        _log(sink, TODAY - timedelta(days=age), "v1", [{"age": age}])
    ship(source, store, now=TODAY)
    _log(sink, TODAY - timedelta(days=60), "v1", [{"age": 60}])  # a local partition never shipped
    result = prune(store, retention_days=30, source=source, now=TODAY)
    assert result.cutoff == (TODAY - timedelta(days=30)).isoformat()
    kept = sorted(r["age"] for r in read_window(store, TODAY - timedelta(days=400), TODAY).rows)
    assert kept == [5, 30]
    assert len(result.deleted_store) == 2 and len(result.deleted_local) == 1
    assert sorted(p.name for p in source.glob("date=*")) == [f"date={TODAY.isoformat()}"]


def test_unreadable_lines_are_counted_by_file_and_line(tmp_path):
    store = Store(tmp_path / "store")
    folder = tmp_path / "store" / PREDICTIONS / f"date={TODAY}" / "model_version=v1"
    folder.mkdir(parents=True)
    good = make_rows("r1", "v1", [{"x": 1}], [{"probability": 0.2, "decision": "no"}], _stamp(TODAY))[0]
    lines = [json.dumps(good), "{not json", json.dumps({**good, "outputs": {"probability": 7}}), "[1]"]
    (folder / "part-a.jsonl").write_text("\n".join(lines) + "\n")
    read = read_window(store, TODAY, TODAY)
    assert len(read.rows) == 1
    assert [(p.line, p.file.endswith("part-a.jsonl")) for p in read.problems] == [
        (2, True),
        (3, True),
        (4, True),
    ]


@pytest.fixture
def logged_store(tmp_path, features, sample_frame, settings):
    """A store with a day of v1 rows (its lineage known), a few v0 rows (no lineage) and a bad line."""
    store = Store(tmp_path / "store")
    sink = PredictionLog(tmp_path / "log")
    names = [f.name for f in features.model_inputs(settings.data.use_protected_as_features)]
    head = sample_frame[names].head(30)
    # as the service logs them: a missing value is null (JSON has no NaN)
    records = head.astype(object).where(head.notna(), None).to_dict("records")
    day = TODAY - timedelta(days=1)
    _log(sink, day, "v1", records, request="batch-1")
    _log(sink, day, "v0", records[:3], request="old")
    ship(tmp_path / "log", store, now=TODAY)
    bad = next((tmp_path / "store").rglob("model_version=v1/*.jsonl"))
    bad.write_text(bad.read_text() + "{oops\n")
    reference = tmp_path / "reference.parquet"
    sample_frame.to_parquet(reference, index=False)
    entry = lineage_mod.VersionLineage(reference_md5=lineage_mod.md5_of(reference), packaged_at="2026-01-01")
    lineage = lineage_mod.Lineage(production="v1", versions={"v1": entry})
    return store, lineage, reference


def test_window_keeps_the_served_version_with_its_own_reference(tmp_path, settings, logged_store):
    store, lineage, reference = logged_store
    out = tmp_path / "current"
    manifest = window.materialize(
        settings, store, lineage, now=TODAY, out_dir=out, current_reference=reference
    )
    assert manifest.model_version == "v1" and manifest.rows == 30
    assert manifest.reference == str(reference)
    assert manifest.reference_md5 == lineage_mod.md5_of(reference)
    assert manifest.unknown_versions == {"v0": 3}
    problems = [p.problem for p in manifest.problems]
    assert manifest.problem_count == 4 and sum("no lineage" in p for p in problems) == 3
    frame = pd.read_parquet(out / "window.parquet")
    assert list(frame["__record__"]) == list(range(30)) and set(frame["__model_version__"]) == {"v1"}
    # the same store read again writes byte-identical files: DVC sees no change
    before = [(out / n).read_bytes() for n in ("window.parquet", "window.json")]
    window.materialize(settings, store, lineage, now=TODAY, out_dir=out, current_reference=reference)
    assert before == [(out / n).read_bytes() for n in ("window.parquet", "window.json")]


def test_a_version_whose_reference_is_gone_is_bad_input(tmp_path, settings, logged_store):
    store, lineage, _ = logged_store
    other = tmp_path / "today.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(DataError, match="md5"):
        window.materialize(
            settings,
            store,
            lineage,
            now=TODAY,
            out_dir=tmp_path / "c",
            current_reference=other,
            cache=tmp_path / "no-cache",
        )


def test_since_last_starts_after_the_marked_window(tmp_path, settings, logged_store):
    store, lineage, reference = logged_store
    since_last = settings.model_copy(
        update={
            "monitoring": settings.monitoring.model_copy(
                update={"window": settings.monitoring.window.model_copy(update={"mode": "since_last"})}
            )
        }
    )
    first = window.materialize(
        since_last, store, lineage, now=TODAY, out_dir=tmp_path / "c", current_reference=reference
    )
    window.mark_checked(store, first)
    later = window.materialize(
        since_last,
        store,
        lineage,
        now=TODAY + timedelta(days=2),
        out_dir=tmp_path / "c",
        current_reference=reference,
    )
    assert later.start == (TODAY + timedelta(days=1)).isoformat() and later.rows == 0


def test_a_crash_in_the_check_is_exit_3_and_bad_input_exit_2(monkeypatch, tmp_path, root):
    from german_credit_scoring.monitoring import window as window_mod

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.chdir(root)
    monkeypatch.setattr(window_mod, "run_check", explode)
    monkeypatch.setattr("german_credit_scoring.paths.DRIFT_RESULT", tmp_path / "drift.json")
    monkeypatch.setattr("german_credit_scoring.paths.DRIFT_MD", tmp_path / "drift.md")
    (tmp_path / "drift.json").write_text('{"verdict": "last good"}')
    assert drift_check_cli([]) == EXIT_CRASH
    assert (tmp_path / "drift.json").read_text() == '{"verdict": "last good"}'  # kept, not replaced
    assert drift_check_cli(["--params", str(tmp_path / "missing.yaml")]) == EXIT_BAD_INPUT


def test_lineage_comes_from_the_bento_record_and_dvc_lock_in_git_history(tmp_path):
    import subprocess

    def commit(version: str, md5: str, message: str) -> None:
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models/bento.json").write_text(json.dumps({"labels": {"model_version": version}}))
        lock = {"stages": {"ingest": {"outs": [{"path": "data/reference/reference.parquet", "md5": md5}]}}}
        (tmp_path / "dvc.lock").write_text(json.dumps(lock))
        subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
        subprocess.run(["git", "commit", "-qm", message], cwd=tmp_path, check=True)

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    commit("old", "a" * 32, "first model")
    commit("new", "b" * 32, "retrained")
    found = lineage_mod.load_lineage(tmp_path)
    assert found.production == "new"
    assert {v: e.reference_md5 for v, e in found.versions.items()} == {"old": "a" * 32, "new": "b" * 32}
    # an old version's snapshot is read from the DVC cache by its hash
    cache = tmp_path / "cache"
    (cache / "aa").mkdir(parents=True)
    (cache / "aa" / ("a" * 30)).write_bytes(b"snapshot")
    path, md5 = lineage_mod.reference_for("old", found, tmp_path / "nope.parquet", cache)
    assert path == cache / "aa" / ("a" * 30) and md5 == "a" * 32
    with pytest.raises(DataError, match="never packaged"):
        lineage_mod.reference_for("ghost", found, tmp_path / "nope.parquet", cache)


def test_a_partition_folder_removed_under_a_running_writer_is_made_again(tmp_path):
    import shutil

    sink = PredictionLog(tmp_path / "log")
    _log(sink, TODAY, "v1", [{"x": 1}])
    shutil.rmtree(tmp_path / "log" / f"date={TODAY}")
    _log(sink, TODAY, "v1", [{"x": 2}])
    assert list(read_prediction_log(tmp_path / "log")["x"]) == [2]


def test_the_last_checked_window_of_the_same_length_sets_the_expected_volume(
    tmp_path, settings, logged_store
):
    store, lineage, reference = logged_store
    out = tmp_path / "c"
    first = window.materialize(settings, store, lineage, now=TODAY, out_dir=out, current_reference=reference)
    assert first.previous_rows is None  # nothing checked yet
    window.mark_checked(store, first)
    later = window.materialize(
        settings, store, lineage, now=TODAY + timedelta(days=1), out_dir=out, current_reference=reference
    )
    assert later.previous_rows == first.rows == 30


def test_an_object_store_without_its_extra_is_a_settings_error_naming_the_extra():
    import importlib.util

    from german_credit_scoring.errors import SettingsError

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("the s3 extra is installed here")
    with pytest.raises(SettingsError, match=r"s3://bucket/prefix.*\[s3\]"):
        Store("s3://bucket/prefix")
