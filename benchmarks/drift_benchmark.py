"""Drift check speed: this project's `check_drift` vs Evidently's DataDriftPreset on the same frames.

    uv run python benchmarks/drift_benchmark.py --rows 1000000 [--rows 100000 ...] [--skip-evidently]

Builds a reference and a current frame (15 numeric + 5 categorical columns; some columns shifted,
the rest drawn from the same distribution), writes both to Parquet, then times:

- ours, end to end: read both Parquet files + every per-feature statistic (in this process);
- ours, compute only (frames already in memory);
- Evidently 0.7.23's ``DataDriftPreset`` (its automatic per-column method), in its own virtual
  environment because Evidently 0.7.23 does not import with pandas 3: ``benchmarks/.venv-evidently``
  is created on first use with ``uv venv`` + ``uv pip install evidently==0.7.23 "pandas<3"``.

and compares the two tools' verdicts column by column. Peak memory of our run is the process's
maximum resident set size (ru_maxrss). Results go to benchmarks/results/drift_benchmark.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-evidently"
RESULTS = HERE / "results" / "drift_benchmark.json"
EVIDENTLY = "evidently==0.7.23"

N_NUMERIC, N_CATEGORICAL = 15, 5
SHIFTED_NUMERIC = {"num_00": "mean +0.5 sd", "num_01": "scale x1.5", "num_02": "mean +0.3 sd (lognormal)"}
SHIFTED_CATEGORICAL = {"cat_00": "30% moved to the rarest category", "cat_01": "5% new categories"}

EVIDENTLY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
    t_import = time.perf_counter()
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    t_read = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    t_run = time.perf_counter()
    drifted, methods = {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        # Evidently's rule: a p-value test drifts below its threshold, a distance at or above it
        drifted[config["column"]] = bool(value < threshold if "p_value" in method else value >= threshold)
        methods[config["column"]] = {"method": method, "threshold": float(threshold), "value": float(value)}
    print(json.dumps({
        "import_s": t_import - t0, "read_s": t_read - t_import, "run_s": t_run - t_read,
        "end_to_end_s": t_run - t_import, "drifted": drifted, "methods": methods,
    }))
    """
)


def make_frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; only the SHIFTED_* columns differ in distribution."""
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        kind = i % 3
        for frame, shifted in ((ref, False), (cur, True)):
            if kind == 0:
                values = rng.normal(10.0, 2.0, rows)
            elif kind == 1:
                values = rng.lognormal(3.0, 0.6, rows)
            else:
                values = rng.poisson(4.0, rows).astype(float)  # discrete, many ties
            if shifted and name == "num_00":
                values = values + 0.5 * 2.0
            if shifted and name == "num_01":
                values = values.mean() + 1.5 * (values - values.mean())
            if shifted and name == "num_02":
                values = values + 0.3 * values.std()
            frame[name] = values
    for i in range(N_CATEGORICAL):
        name = f"cat_{i:02d}"
        k = 4 + 3 * i
        probabilities = rng.dirichlet(np.full(k, 2.0))
        levels = np.array([f"{name}_level_{j}" for j in range(k)], dtype=object)
        for frame, shifted in ((ref, False), (cur, True)):
            values = levels[rng.choice(k, size=rows, p=probabilities)]
            if shifted and name == "cat_00":
                values[rng.random(rows) < 0.3] = levels[np.argmin(probabilities)]
            if shifted and name == "cat_01":
                values[rng.random(rows) < 0.05] = f"{name}_new"
            frame[name] = values
    return pd.DataFrame(ref), pd.DataFrame(cur)


def feature_set():
    from german_credit_scoring.contract import FeatureDefinition, FeatureSet

    return FeatureSet(
        features=[FeatureDefinition(name=f"num_{i:02d}", dtype="float") for i in range(N_NUMERIC)]
        + [FeatureDefinition(name=f"cat_{i:02d}", dtype="category") for i in range(N_CATEGORICAL)]
    )


def run_ours(ref_path: Path, cur_path: Path, repeats: int) -> dict:
    from german_credit_scoring.drift import compare_features
    from german_credit_scoring.settings import DriftSettings

    features, settings = feature_set(), DriftSettings()
    end_to_end, compute = [], []
    result = []
    for _ in range(repeats):
        start = time.perf_counter()
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        loaded = time.perf_counter()
        result, _ = compare_features(ref, cur, features.features, settings)
        done = time.perf_counter()
        end_to_end.append(done - start)
        compute.append(done - loaded)
    return {
        "end_to_end_s": min(end_to_end),
        "compute_s": min(compute),
        "runs": len(end_to_end),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "drifted": {row["name"]: row["drifted"] for row in result},
        "stats": {
            row["name"]: {k: row[k] for k in ("psi", "ks_statistic", "js_distance", "chi2_p_value")}
            for row in result
        },
    }


def run_ours_isolated(ref_path: Path, cur_path: Path, repeats: int) -> dict:
    """Our check in a fresh process, so its peak memory is not the frame generator's."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--internal-ours",
            str(ref_path),
            str(cur_path),
            "--repeats",
            str(repeats),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"our drift check failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # one cold run as a user sees it: interpreter start, imports, reading both files, every statistic
    start = time.perf_counter()
    cold = subprocess.run(
        [sys.executable, __file__, "--internal-ours", str(ref_path), str(cur_path), "--repeats", "1"],
        capture_output=True,
        check=True,
    )
    result["process_wall_s"] = time.perf_counter() - start
    result["process_peak_rss_mib"] = json.loads(cold.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    return result


def ensure_evidently() -> Path:
    python = VENV / "bin" / "python"
    if python.exists():
        return python
    subprocess.run(["uv", "venv", "--python", "3.11", str(VENV)], check=True)
    subprocess.run(
        ["uv", "pip", "install", "--python", str(python), EVIDENTLY, "pandas<3", "pyarrow"], check=True
    )
    return python


def run_evidently(ref_path: Path, cur_path: Path, numeric: list[str], categorical: list[str]) -> dict:
    python = ensure_evidently()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(EVIDENTLY_SCRIPT)
    start = time.perf_counter()
    out = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            str(python),
            script.name,
            str(ref_path),
            str(cur_path),
            ",".join(numeric),
            ",".join(categorical),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    Path(script.name).unlink()
    if out.returncode != 0:
        raise RuntimeError(f"evidently failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    try:
        result["peak_rss_mib"] = int(out.stderr.strip().splitlines()[-1]) / 1024
    except (ValueError, IndexError):
        result["peak_rss_mib"] = None
    return result


def benchmark(rows: int, repeats: int, skip_evidently: bool) -> dict:
    ref, cur = make_frames(rows)
    numeric = [c for c in ref.columns if c.startswith("num_")]
    categorical = [c for c in ref.columns if c.startswith("cat_")]
    shifted = [*SHIFTED_NUMERIC, *SHIFTED_CATEGORICAL]
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, cur_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        ref.to_parquet(ref_path, index=False)
        cur.to_parquet(cur_path, index=False)
        del ref, cur
        ours = run_ours_isolated(ref_path, cur_path, repeats)
        theirs = None if skip_evidently else run_evidently(ref_path, cur_path, numeric, categorical)
    summary = {
        "rows_reference": rows,
        "rows_current": rows,
        "columns": {"numeric": len(numeric), "categorical": len(categorical)},
        "shifted_columns": {**SHIFTED_NUMERIC, **SHIFTED_CATEGORICAL},
        "ours": ours,
        "evidently": theirs,
        "ours_flagged": sorted(k for k, v in ours["drifted"].items() if v),
        "ours_shifted_all_flagged": all(ours["drifted"][c] for c in shifted),
        "ours_false_alarms": sorted(k for k, v in ours["drifted"].items() if v and k not in shifted),
    }
    if theirs is not None:
        summary["evidently_flagged"] = sorted(k for k, v in theirs["drifted"].items() if v)
        summary["same_verdict_on_shifted"] = all(
            ours["drifted"][c] == theirs["drifted"].get(c) for c in shifted
        )
        summary["same_verdict_on_all"] = all(
            ours["drifted"][c] == theirs["drifted"].get(c) for c in ours["drifted"]
        )
        summary["speedup_end_to_end"] = theirs["end_to_end_s"] / ours["end_to_end_s"]
        summary["speedup_compute"] = theirs["run_s"] / ours["compute_s"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per frame (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="our runs per size (best is reported)")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--internal-ours", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.internal_ours:
        print(json.dumps(run_ours(*args.internal_ours, args.repeats), default=float))
        return 0
    sizes = args.rows or [100_000, 1_000_000]
    report = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "runs": [],
    }
    for rows in sizes:
        summary = benchmark(rows, args.repeats, args.skip_evidently)
        report["runs"].append(summary)
        ours, theirs = summary["ours"], summary["evidently"]
        line = (
            f"{rows:>9,} rows: ours {ours['end_to_end_s']:.2f} s read+check ({ours['compute_s']:.2f} s compute, "
            f"{ours['process_wall_s']:.2f} s cold process), "
            f"peak RSS {ours['peak_rss_mib']:.0f} MiB; flagged {summary['ours_flagged']}"
        )
        print(line)
        if theirs is not None:
            print(
                f"{'':>15}evidently {theirs['end_to_end_s']:.2f} s end to end ({theirs['run_s']:.2f} s report), "
                f"peak RSS {theirs['peak_rss_mib'] or 0:.0f} MiB; flagged {summary['evidently_flagged']}"
            )
            print(
                f"{'':>15}speed-up x{summary['speedup_end_to_end']:.1f} end to end, "
                f"x{summary['speedup_compute']:.1f} compute; same verdicts on shifted columns: "
                f"{summary['same_verdict_on_shifted']}, on all columns: {summary['same_verdict_on_all']}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
