"""The versioned training dataset: append validates, deduplicates, tracks with DVC, moves the pointer."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.ingest import ingest
from german_credit_scoring.monitoring.dataset import (
    append,
    dataset_cli,
    labelled_production_rows,
    read_dataset,
)
from german_credit_scoring.monitoring.labels import ingest_labels
from german_credit_scoring.monitoring.prediction_log import PredictionLog, make_rows
from german_credit_scoring.monitoring.store import Store, ship
from german_credit_scoring.settings import load_settings, parse_settings

DVC = str(Path(sys.executable).parent / "dvc")


@pytest.fixture
def project(tmp_path, root, monkeypatch):
    """A git repository holding the project's settings, contract and sample."""
    settings = load_settings(root / "params.yaml")
    for name in ("params.yaml", str(settings.features), str(settings.data.path)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(DVC).parent}:{__import__('os').environ['PATH']}")
    return tmp_path


def _classes(settings, frame):
    return sorted(frame[settings.data.target].astype(str).unique())


def test_append_adds_a_tracked_part_and_moves_the_pointer(project, features):
    subprocess.run([DVC, "init", "-q"], cwd=project, check=True)
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    classes = _classes(settings, base)
    numeric = features.numeric[0]
    # new rows: 20 sample rows with a changed value, one of them twice, and two rows already there
    fresh = base.head(20).copy()
    low = numeric.min if numeric.min is not None else 0
    fresh[numeric.name] = (
        fresh[numeric.name].where(fresh[numeric.name] != low, low + 1).where(fresh[numeric.name] == low, low)
    )
    fresh = fresh.drop_duplicates()
    offered = pd.concat([fresh, fresh.head(1), base.iloc[[100, 101]]], ignore_index=True)
    result = append(offered, settings, features, classes, Path("params.yaml"))
    assert result.offered == len(fresh) + 3
    assert (result.duplicates_in_dataset, result.duplicates_in_batch) == (2, 1)
    assert result.added == len(fresh)
    part = Path(result.part)
    assert part.is_file() and Path(f"{part}.dvc").is_file()  # DVC tracks it: the pointer is committed
    assert part.name in (part.parent / ".gitignore").read_text()
    moved = load_settings("params.yaml")
    assert [str(p) for p in moved.data.appended] == [result.part]
    assert len(read_dataset(moved)) == len(base) + result.added
    assert ingest(moved, features).summary["rows"] == len(base) + result.added
    # appending the same rows again adds nothing and keeps the version
    again = append(offered, moved, features, classes, Path("params.yaml"))
    assert again.added == 0 and again.part is None and again.version == [result.part]
    # the command without a DVC remote: the new part stays local and nothing is handed on
    newer = base.iloc[200:205].assign(**{numeric.name: low}).drop_duplicates()
    newer.to_csv("newer.csv", index=False)
    assert dataset_cli(["append", "--from", "newer.csv", "--push", "--pointers-out", "pointers.txt"]) == 0
    assert Path("pointers.txt").read_text() == ""
    local = load_settings("params.yaml").data.appended[-1]
    # with a remote: pushed, and the files a pull request commits are listed
    subprocess.run([DVC, "remote", "add", "-q", "-d", "local", str(project / "remote")], check=True)
    newest = base.iloc[210:215].assign(**{numeric.name: low}).drop_duplicates()
    newest.to_csv("newest.csv", index=False)
    assert dataset_cli(["append", "--from", "newest.csv", "--push", "--pointers-out", "pointers.txt"]) == 0
    second = load_settings("params.yaml").data.appended[-1]
    assert Path("pointers.txt").read_text().split() == ["params.yaml", f"{second}.dvc"]
    assert [str(p) for p in load_settings("params.yaml").data.appended] == [
        result.part,
        str(local),
        str(second),
    ]
    assert any(p.is_file() for p in (project / "remote").rglob("*"))  # the content reached the remote


def test_rows_are_duplicates_however_the_data_file_wrote_their_numbers_and_gaps(project, features):
    # given the dataset file with every numeric column written as floats (2372.0), as a tool that
    # went through pandas with a gap in the column leaves it
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    floats = base.assign(**{f.name: base[f.name].astype("float64") for f in features.numeric})
    path = Path(settings.data.path)
    if path.suffix == ".parquet":
        floats.to_parquet(path, index=False)
    else:
        floats.to_csv(path, index=False)
    # when rows already there are offered again: typed by the contract, and with their missing cells
    gaps = base[base[features.names].isna().any(axis=1)].head(5)
    offered = pd.concat([base.head(5), gaps], ignore_index=True)
    result = append(offered, settings, features, _classes(settings, base), Path("params.yaml"), dvc=False)
    # then each is recognised as already in the dataset, and no version is added
    assert (result.duplicates_in_dataset, result.added, result.part) == (len(offered), 0, None)


def test_rows_breaking_the_contract_are_refused_by_column(project, features):
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    classes = _classes(settings, base)
    # a value the contract does not allow: an undeclared category, else a number above the maximum
    checked = next(f for f in features.features if f.allowed_values or f.max is not None)
    bad = base.head(3).copy()
    bad[checked.name] = "not-a-category" if checked.allowed_values else checked.max + 1
    with pytest.raises(DataError, match=checked.name):
        append(bad, settings, features, classes, Path("params.yaml"))
    with pytest.raises(DataError, match=settings.data.target):
        append(base.head(3).assign(**{settings.data.target: "maybe"}), settings, features, classes)
    with pytest.raises(DataError, match="lack"):
        append(base.head(3).drop(columns=[checked.name]), settings, features, classes)
    assert load_settings("params.yaml").data.appended == []  # nothing moved
    # nothing labelled yet (an empty store): no new version, and the command says so without failing
    assert dataset_cli(["append", "--store", "empty-store", "--pointers-out", "p.txt", "--no-dvc"]) == 0
    assert Path("p.txt").read_text() == "" and load_settings("params.yaml").data.appended == []


def test_an_altered_part_is_refused(project, features):
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    classes = _classes(settings, base)
    # new rows: existing ones with the other label
    other = {label: classes[(i + 1) % len(classes)] for i, label in enumerate(classes)}
    fresh = base.head(5).copy()
    fresh[settings.data.target] = fresh[settings.data.target].astype(str).map(other)
    result = append(fresh, settings, features, classes, Path("params.yaml"), dvc=False)
    assert result.part is not None
    Path(result.part).write_bytes(Path(result.part).read_bytes() + b"x")
    with pytest.raises(DataError, match="does not match the hash"):
        read_dataset(load_settings("params.yaml"))


def test_matured_production_rows_with_their_outcomes_become_training_rows(project, features):
    settings = load_settings("params.yaml")
    raw = settings.model_dump(mode="json")
    raw["split"].update({"method": "time", "time_column": "applied_at"})
    timed = parse_settings(raw)
    base = read_dataset(settings)
    inputs = [f.name for f in features.model_inputs(settings.data.use_protected_as_features)]
    rows = base.iloc[300:310]
    now = datetime(2026, 3, 10, tzinfo=UTC)
    stamp = (now - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    # as the service logs them: Python values, a missing value null (JSON has no NaN)
    records = [
        {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in rows[inputs].to_dict("records")
    ]
    outputs = [{"probability": 0.5, "decision": "x"}] * len(records)
    PredictionLog("log").append(make_rows("batch", "v1", records, outputs, stamp))
    store = Store("store")
    ship("log", store, now=now.date())
    # the outcomes bring the protected attributes the service never saw
    protected = [n for n in settings.data.protected_names if n not in inputs]
    with open("outcomes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "record", settings.data.target, *protected])
        for i, (_, row) in enumerate(rows.iterrows()):
            writer.writerow(["batch", i, row[settings.data.target], *[row[n] for n in protected]])
    classes = _classes(settings, base)
    ingest_labels([Path("outcomes.csv")], timed, store, classes, features, now=now)
    frame = labelled_production_rows(timed, store, now=now)
    assert len(frame) == 10 and set(frame["applied_at"]) == {stamp}
    # outcomes arrive as text (a 0/1 target in the dataset reads as integers)
    assert list(frame[settings.data.target]) == list(rows[settings.data.target].astype(str))
    assert set(features.names) <= set(frame.columns)
    result = append(frame, timed, features, classes, Path("params.yaml"), dvc=False)
    # the same applicants as sample rows 300-309: already in the dataset, nothing new
    assert result.duplicates_in_dataset == 10 and result.added == 0
