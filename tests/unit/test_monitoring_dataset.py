"""The versioned training dataset: append validates, deduplicates, tracks with DVC, moves the pointer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from german_credit_scoring.errors import DataError
from german_credit_scoring.ingest import ingest
from german_credit_scoring.monitoring.dataset import append, dataset_cli, read_dataset
from german_credit_scoring.settings import load_settings

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
    # the command: a second version pushed to the DVC remote, the files a pull request commits listed
    subprocess.run([DVC, "remote", "add", "-q", "-d", "local", str(project / "remote")], check=True)
    newer = base.iloc[200:205].assign(**{numeric.name: low}).drop_duplicates()
    newer.to_csv("newer.csv", index=False)
    code = dataset_cli(["append", "--from", "newer.csv", "--push", "--pointers-out", "pointers.txt"])
    assert code == 0
    second = load_settings("params.yaml").data.appended[-1]
    assert Path("pointers.txt").read_text().split() == ["params.yaml", f"{second}.dvc"]
    assert [str(p) for p in load_settings("params.yaml").data.appended] == [result.part, str(second)]
    assert any(p.is_file() for p in (project / "remote").rglob("*"))  # the content reached the remote


def test_rows_breaking_the_contract_are_refused_by_column(project, features):
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    classes = _classes(settings, base)
    category = features.categorical[0].name
    bad = base.head(3).copy()
    bad[category] = "not-a-category"
    with pytest.raises(DataError, match=category):
        append(bad, settings, features, classes, Path("params.yaml"))
    with pytest.raises(DataError, match=settings.data.target):
        append(base.head(3).assign(**{settings.data.target: "maybe"}), settings, features, classes)
    with pytest.raises(DataError, match="lack"):
        append(base.head(3).drop(columns=[category]), settings, features, classes)
    assert load_settings("params.yaml").data.appended == []  # nothing moved
    # nothing labelled yet (an empty store): no new version, and the command says so without failing
    assert dataset_cli(["append", "--store", "empty-store", "--pointers-out", "p.txt", "--no-dvc"]) == 0
    assert Path("p.txt").read_text() == "" and load_settings("params.yaml").data.appended == []


def test_an_altered_part_is_refused(project, features):
    settings = load_settings("params.yaml")
    base = read_dataset(settings)
    fresh = base.head(5).copy()
    fresh[settings.data.target] = fresh[settings.data.target][::-1].to_numpy()
    result = append(fresh, settings, features, _classes(settings, base), Path("params.yaml"), dvc=False)
    if result.part is None:
        pytest.skip("the reversed labels reproduced existing rows")
    Path(result.part).write_bytes(Path(result.part).read_bytes() + b"x")
    with pytest.raises(DataError, match="does not match the hash"):
        read_dataset(load_settings("params.yaml"))
