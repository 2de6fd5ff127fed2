"""Drift check speed as a user runs it: `mlops drift` vs Evidently's DataDriftPreset, whole processes.

    uv run python benchmarks/drift_benchmark.py                       # 1M vs 1M rows, then a 10M window
    uv run python benchmarks/drift_benchmark.py --rows 100000 --window-rows 0 --repeats 1
    uv run python benchmarks/drift_benchmark.py --evidently-python /path/to/venv/bin/python

Writes a reference and a current Parquet file (15 numeric + 5 categorical columns; five columns
shifted, the rest drawn from the same distribution), a feature contract and a params.yaml for them,
then times, side by side in one run:

- ``mlops drift --no-model`` as its own process (interpreter start, imports, reading both files,
  every statistic, both reports written): wall time and peak resident memory (``/usr/bin/time``);
- a script running Evidently 0.7.23's ``DataDriftPreset`` on the same files, as its own process in
  its own virtual environment (Evidently 0.7.23 needs pandas 2.3): ``--evidently-python``, else
  ``$EVIDENTLY_PYTHON``, else /tmp/evidently-venv, created on first use with
  ``uv venv`` + ``uv pip install evidently==0.7.23 "pandas==2.3.*" pyarrow``;
- ``mlops drift`` on a window of ``--window-rows`` current rows (10M; Parquet written in 1M-row
  row groups) against the same reference: peak memory of streaming a large window.

and compares both tools' verdicts column by column. Results go to benchmarks/results/drift_benchmark.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "drift_benchmark.json"
EVIDENTLY = "evidently==0.7.23"
DEFAULT_EVIDENTLY_VENV = Path("/tmp/evidently-venv")

N_NUMERIC, N_CATEGORICAL = 15, 5
SHIFTED_NUMERIC = {"num_00": "mean +0.5 sd", "num_01": "scale x1.5", "num_02": "mean +0.3 sd (poisson)"}
SHIFTED_CATEGORICAL = {"cat_00": "30% moved to the rarest category", "cat_01": "5% new categories"}
CHUNK = 1_000_000

EVIDENTLY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    drifted, methods = {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        # Evidently's rule: a p-value test drifts below its threshold, a distance at or above it
        drifted[config["column"]] = bool(value < threshold if "p_value" in method else value >= threshold)
        methods[config["column"]] = {"method": method, "threshold": float(threshold), "value": float(value)}
    print(json.dumps({"drifted": drifted, "methods": methods}))
    """
)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _chunk(rows: int, shifted: bool, seed: int) -> dict[str, np.ndarray]:
    """One chunk of rows; the category probabilities are fixed by design, the draws by ``seed``."""
    design = np.random.default_rng(1234)
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        kind = i % 3
        if kind == 0:
            values = rng.normal(10.0, 2.0, rows)
        elif kind == 1:
            values = rng.lognormal(3.0, 0.6, rows)
        else:
            values = rng.poisson(4.0, rows).astype(float)  # discrete, many ties
        if shifted and name == "num_00":
            values = values + 0.5 * 2.0
        if shifted and name == "num_01":
            values = np.exp(3.18) + 1.5 * (values - np.exp(3.18))  # around the mean
        if shifted and name == "num_02":
            values = values + 0.3 * 2.0
        columns[name] = values
    for i in range(N_CATEGORICAL):
        name = f"cat_{i:02d}"
        k = 4 + 3 * i
        probabilities = design.dirichlet(np.full(k, 2.0))
        levels = np.array([f"{name}_level_{j}" for j in range(k)], dtype=object)
        values = levels[rng.choice(k, size=rows, p=probabilities)]
        if shifted and name == "cat_00":
            values[rng.random(rows) < 0.3] = levels[np.argmin(probabilities)]
        if shifted and name == "cat_01":
            values[rng.random(rows) < 0.05] = f"{name}_new"
        columns[name] = values
    return columns


def write_parquet(path: Path, rows: int, shifted: bool, seed: int) -> None:
    """``rows`` rows in row groups of at most 1M, written one group at a time (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for index, start in enumerate(range(0, rows, CHUNK)):
            data = _chunk(min(CHUNK, rows - start), shifted, seed * 1000 + index)
            table = pa.table({name: pa.array(values) for name, values in data.items()})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def write_project(folder: Path) -> None:
    """A contract for the benchmark's columns and a params.yaml with the default drift settings."""
    import yaml

    features = [{"name": f"num_{i:02d}", "dtype": "float"} for i in range(N_NUMERIC)]
    features += [{"name": f"cat_{i:02d}", "dtype": "category"} for i in range(N_CATEGORICAL)]
    (folder / "features.yaml").write_text(yaml.safe_dump({"features": features}, sort_keys=False))
    params = {
        "project": {"name": "Drift Benchmark", "slug": "drift-benchmark"},
        "data": {"path": "reference.parquet", "target": "outcome", "positive_label": "1"},
        "features": "features.yaml",
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# --------------------------------------------------------------------------------------------------
# Timed processes
# --------------------------------------------------------------------------------------------------


def user_env() -> dict[str, str]:
    """A user's environment: bytecode caches are written and used (both tools get a warm-up run)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path) -> dict:
    """Run a command under /usr/bin/time: wall seconds, peak RSS (MiB), exit code, stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as clock:
        out = subprocess.run(
            ["/usr/bin/time", "-o", clock.name, "-f", "%e %M", *command],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            env=user_env(),
        )
        wall, rss_kib = clock.read().split()[-2:]
    return {
        "wall_s": float(wall),
        "peak_rss_mib": int(rss_kib) / 1024,
        "exit_code": out.returncode,
        "stdout": out.stdout,
        "stderr": out.stderr[-3000:],
    }


def mlops_command() -> list[str]:
    script = Path(sys.executable).with_name("mlops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "german_credit_scoring.cli"]


def run_ours(folder: Path, current: Path, repeats: int, warm_up: bool = True) -> dict:
    runs = []
    for attempt in range(repeats + warm_up):
        run = timed(
            [
                *mlops_command(),
                "drift",
                "--reference",
                "reference.parquet",
                "--current",
                str(current),
                "--no-model",
                "--json",
                "drift.json",
                "--markdown",
                "drift.md",
            ],
            folder,
        )
        if run["exit_code"] not in (0, 1):
            raise RuntimeError(f"mlops drift failed ({run['exit_code']}):\n{run['stderr']}")
        if attempt or not warm_up:
            runs.append(run)
    result = json.loads((folder / "drift.json").read_text())
    return {
        "command": "mlops drift --reference reference.parquet --current current.parquet --no-model",
        "wall_s": [r["wall_s"] for r in runs],
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "exit_code": runs[-1]["exit_code"],
        "verdict": result["verdict"],
        "tests": result["tests"],
        "drifted": {row["name"]: row["drifted"] for row in result["features"]},
        "stats": {
            row["name"]: {
                k: row[k] for k in ("psi", "ks_statistic", "js_distance", "p_value", "p_value_adjusted")
            }
            for row in result["features"]
        },
    }


def evidently_python(explicit: str | None) -> Path:
    candidate = explicit or os.environ.get("EVIDENTLY_PYTHON")
    if candidate:
        return Path(candidate)
    python = DEFAULT_EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "--python", "3.11", str(DEFAULT_EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [uv, "pip", "install", "--python", str(python), EVIDENTLY, "pandas==2.3.*", "pyarrow"], check=True
        )
    return python


def run_evidently(folder: Path, python: Path, numeric: list[str], categorical: list[str]) -> dict:
    script = folder / "evidently_drift.py"
    script.write_text(EVIDENTLY_SCRIPT)
    # warm-up: its imports compiled to bytecode once, as on a user's second run
    warm = "import pandas, pyarrow.parquet, evidently; from evidently.presets import DataDriftPreset"
    subprocess.run([str(python), "-c", warm], check=True, env=user_env())
    run = timed(
        [
            str(python),
            str(script),
            "reference.parquet",
            "current.parquet",
            ",".join(numeric),
            ",".join(categorical),
        ],
        folder,
    )
    if run["exit_code"] != 0:
        raise RuntimeError(f"evidently failed:\n{run['stderr']}")
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    version = subprocess.run(
        [str(python), "-c", "import evidently, pandas; print(evidently.__version__, pandas.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "command": f"{python} evidently_drift.py (DataDriftPreset)",
        "versions": {"evidently": version[0], "pandas": version[1]},
        "wall_s": run["wall_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        **result,
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows in the reference and the current file"
    )
    parser.add_argument(
        "--window-rows", type=int, default=10_000_000, help="rows of the large window (0: skip)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of mlops drift (median reported)")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-python", help="python of a venv with evidently 0.7.23 and pandas 2.3")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    numeric = [f"num_{i:02d}" for i in range(N_NUMERIC)]
    categorical = [f"cat_{i:02d}" for i in range(N_CATEGORICAL)]
    shifted = [*SHIFTED_NUMERIC, *SHIFTED_CATEGORICAL]
    import pandas as pd
    import pyarrow

    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": pyarrow.__version__,
            "pandas (benchmark process only)": pd.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "rows_reference": args.rows,
        "rows_current": args.rows,
        "columns": {"numeric": N_NUMERIC, "categorical": N_CATEGORICAL},
        "shifted_columns": {**SHIFTED_NUMERIC, **SHIFTED_CATEGORICAL},
    }
    with tempfile.TemporaryDirectory(prefix="drift-benchmark-") as tmp:
        folder = Path(tmp)
        write_project(folder)
        write_parquet(folder / "reference.parquet", args.rows, shifted=False, seed=1)
        write_parquet(folder / "current.parquet", args.rows, shifted=True, seed=2)
        ours = run_ours(folder, folder / "current.parquet", args.repeats)
        report["ours"] = ours
        print(
            f"{args.rows:,} vs {args.rows:,} rows: mlops drift {ours['wall_s_median']:.2f} s wall "
            f"(runs {', '.join(f'{w:.2f}' for w in ours['wall_s'])}), peak RSS {ours['peak_rss_mib']:.0f} MiB, "
            f"flagged {sorted(k for k, v in ours['drifted'].items() if v)}"
        )
        report["ours_shifted_all_flagged"] = all(ours["drifted"][c] for c in shifted)
        report["ours_false_alarms"] = sorted(k for k, v in ours["drifted"].items() if v and k not in shifted)
        if not args.skip_evidently:
            theirs = run_evidently(folder, evidently_python(args.evidently_python), numeric, categorical)
            report["evidently"] = theirs
            report["same_verdict_on_shifted"] = all(
                ours["drifted"][c] == theirs["drifted"].get(c) for c in shifted
            )
            report["same_verdict_on_all"] = all(
                ours["drifted"][c] == theirs["drifted"].get(c) for c in ours["drifted"]
            )
            report["speedup_whole_process"] = theirs["wall_s"] / ours["wall_s_median"]
            print(
                f"{'':>10}Evidently DataDriftPreset {theirs['wall_s']:.2f} s wall, peak RSS "
                f"{theirs['peak_rss_mib']:.0f} MiB, flagged {sorted(k for k, v in theirs['drifted'].items() if v)}"
            )
            print(
                f"{'':>10}speed-up x{report['speedup_whole_process']:.1f} (whole processes); same verdicts on "
                f"shifted columns: {report['same_verdict_on_shifted']}, on all: {report['same_verdict_on_all']}"
            )
        if args.window_rows:
            (folder / "current.parquet").unlink()
            window = folder / "window"
            window.mkdir()
            write_parquet(window / "window.parquet", args.window_rows, shifted=True, seed=3)
            big = run_ours(folder, window, 1, warm_up=False)
            report["window"] = {"rows_current": args.window_rows, **big}
            print(
                f"{args.window_rows:,}-row window vs {args.rows:,}: mlops drift {big['wall_s_median']:.2f} s wall, "
                f"peak RSS {big['peak_rss_mib']:.0f} MiB"
            )
    report["machine"]["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
