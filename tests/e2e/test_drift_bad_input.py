"""`mlops drift` as a user runs it, on bad input and bad data: exit 2 naming the column or file for
input it cannot judge, exit 1 with a named finding for data-quality drift, never a pass, never a trace.

Columns come from the contract (features/features.yaml) and settings, never from the sample's names.
The reference is the project's own data prepared in-process (no pipeline run needed).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.e2e.helpers import run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def split(settings, features, sample_frame):
    from german_credit_scoring.lifecycle.ingest import prepare

    return prepare(sample_frame, settings, features, "sample")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, split):
    path = tmp_path_factory.mktemp("reference") / "reference.parquet"
    split.train.to_parquet(path, index=False)
    return path


@pytest.fixture
def current(split):
    """A steady current batch: held-out rows resampled to 2,000."""
    return split.test.sample(2000, replace=True, random_state=0).reset_index(drop=True)


def drift(reference, tmp_path, source, *extra):
    """`mlops drift` in its own process, reports under tmp_path (the project tree is only read)."""
    out = run(
        ROOT,
        sys.executable,
        "-m",
        "german_credit_scoring.cli",
        "drift",
        "--reference",
        str(reference),
        "--current",
        str(source),
        "--no-model",
        "--json",
        str(tmp_path / "drift.json"),
        "--markdown",
        str(tmp_path / "drift.md"),
        *extra,
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def test_steady_batch_passes(reference, tmp_path, current):
    current.to_parquet(tmp_path / "current.parquet", index=False)
    out = drift(reference, tmp_path, tmp_path / "current.parquet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((tmp_path / "drift.json").read_text())["verdict"] == "no_drift"


def test_a_missing_model_input_column_exits_2_naming_it(reference, tmp_path, current, features):
    absent = features.model_inputs()[0].name
    current.drop(columns=[absent]).to_csv(tmp_path / "current.csv", index=False)
    (tmp_path / "drift.json").write_text('{"verdict": "last good"}')
    out = drift(reference, tmp_path, tmp_path / "current.csv")
    assert out.returncode == 2
    assert absent in out.stderr and "model input" in out.stderr
    # the last good report is not replaced by a failed run
    assert json.loads((tmp_path / "drift.json").read_text()) == {"verdict": "last good"}


def test_a_file_unrelated_to_the_contract_exits_2_naming_its_columns(reference, tmp_path):
    # few rows on purpose: "not enough data" must not hide a wrong file
    pd.DataFrame({"sku": ["a", "b", "c"], "price": [1.0, 2.5, 3.0]}).to_csv(
        tmp_path / "other.csv", index=False
    )
    out = drift(reference, tmp_path, tmp_path / "other.csv")
    assert out.returncode == 2
    assert "none of the declared features" in out.stderr and "sku" in out.stderr


def test_a_key_feature_30_percent_missing_exits_1_with_a_missing_rate_finding(
    reference, tmp_path, current, features
):
    key = next(f.name for f in features.model_inputs() if f.is_numeric)
    current[key] = current[key].astype("float64")
    current.loc[np.random.default_rng(1).random(len(current)) < 0.3, key] = np.nan
    current.to_parquet(tmp_path / "current.parquet", index=False)
    out = drift(reference, tmp_path, tmp_path / "current.parquet")
    assert out.returncode == 1, out.stdout + out.stderr
    result = json.loads((tmp_path / "drift.json").read_text())
    assert {"kind": "missing_rate", "name": key} in [
        {k: f[k] for k in ("kind", "name")} for f in result["findings"]
    ]
    assert "missing values" in (tmp_path / "drift.md").read_text()


def test_a_volume_drop_exits_1(reference, tmp_path, current, settings):
    params = tmp_path / "params.yaml"
    raw = settings.model_dump(mode="json")
    raw["drift"]["expected_rows"] = len(current) * 4
    params.write_text(json.dumps(raw))  # JSON is YAML
    current.to_parquet(tmp_path / "current.parquet", index=False)
    out = drift(reference, tmp_path, tmp_path / "current.parquet", "--params", str(params))
    assert out.returncode == 1, out.stdout + out.stderr
    assert json.loads((tmp_path / "drift.json").read_text())["volume"]["drifted"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", b""),
        ("garbage.parquet", b"PAR1 this is not parquet"),
        ("latin1.jsonl", '{"inputs": {"x": "caf\xe9"}}\n'.encode("latin-1")),
        ("array.json", b"[1, 2"),
        ("repeated.csv", b"a,b,a\n1,2,3\n"),
        ("truncated.parquet", b"PAR1\x15\x04\x15"),
    ],
)
def test_malformed_files_exit_2_naming_the_file_without_a_trace(reference, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    out = drift(reference, tmp_path, tmp_path / name)
    assert out.returncode == 2, out.stdout + out.stderr
    assert name in out.stderr


def test_a_non_numeric_value_in_a_numeric_feature_exits_2_naming_the_column(
    reference, tmp_path, current, features
):
    key = next(f.name for f in features.model_inputs() if f.is_numeric)
    current[key] = current[key].astype(object)
    current.loc[5, key] = "n/a-value"
    current.to_csv(tmp_path / "current.csv", index=False)
    out = drift(reference, tmp_path, tmp_path / "current.csv")
    assert out.returncode == 2
    assert key in out.stderr and "n/a-value" in out.stderr


def test_malformed_log_lines_are_counted_by_file_and_line_and_the_rest_is_judged(
    reference, tmp_path, current, features
):
    logs = tmp_path / "logs"
    logs.mkdir()
    inputs = [f.name for f in features.model_inputs()]
    lines = [json.dumps({"inputs": row}, default=str) for row in current[inputs].to_dict(orient="records")]
    lines[3] = '{"inputs": {'  # truncated write
    lines[7] = "[1, 2, 3]"
    key = next(f.name for f in features.model_inputs() if f.is_numeric)
    record = json.loads(lines[10])
    record["inputs"][key] = "not a number"  # one unusable value: read as missing, reported
    lines[10] = json.dumps(record)
    (logs / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    out = drift(reference, tmp_path, logs)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    result = json.loads((tmp_path / "drift.json").read_text())
    assert result["current_rows"] == len(current) - 2
    assert result["bad_records"]["count"] == 3
    assert [(e["line"]) for e in result["bad_records"]["examples"]] == [4, 8, 11]
    assert key in result["bad_records"]["examples"][2]["error"]
    report = (tmp_path / "drift.md").read_text()
    assert "part-0.jsonl" in report and "line 4" in report
