"""Time the whole pipeline: `dvc repro` from scratch, a no-op `dvc repro`, and each stage alone.

    uv run python benchmarks/pipeline_benchmark.py                 # the bundled 1,000-row sample
    uv run python benchmarks/pipeline_benchmark.py --rows 1000000  # a resampled, noised 1M-row set

Works on a throw-away copy of the project; prints one table (seconds and peak memory per stage).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.helpers import copy_project, project_env  # noqa: E402

log = logging.getLogger("pipeline_benchmark")
STAGES = ["ingest", "validate", "features", "train", "evaluate", "fairness", "gate", "package", "drift"]

MEASURE = """
import json, resource, runpy, sys, time
start = time.perf_counter()
sys.argv = [sys.argv[1]]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    code = exit_.code or 0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": usage.ru_maxrss / 1024, "code": code}),
      file=sys.stderr)
sys.exit(code)
"""


def synthesise(sample: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """Resample the sample with replacement and jitter numeric columns (same schema, same ranges)."""
    rng = np.random.default_rng(seed)
    frame = sample.iloc[rng.integers(0, len(sample), rows)].reset_index(drop=True)
    for name in frame.select_dtypes("number").columns:
        column = frame[name].to_numpy(dtype=float)
        low, high = column.min(), column.max()
        noisy = column * rng.normal(1.0, 0.05, rows)
        noisy = np.clip(noisy, low, high)
        frame[name] = (
            np.round(noisy).astype(np.int64) if pd.api.types.is_integer_dtype(sample[name]) else noisy
        )
    return frame


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=0, help="rows to synthesise (0: the bundled sample)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    workdir = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    project = copy_project(workdir / "project")
    if args.rows:
        params = yaml.safe_load((project / "params.yaml").read_text())
        sample = pd.read_csv(project / params["data"]["path"])
        synthesise(sample, args.rows).to_parquet(project / "data/raw/synthetic.parquet", index=False)
        params["data"]["path"] = "data/raw/synthetic.parquet"
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rows = args.rows or "sample (1,000)"

    total, result = timed([sys.executable, "-m", "dvc", "repro"], project)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        return 1
    noop, _ = timed([sys.executable, "-m", "dvc", "repro"], project)
    noop_model, _ = timed([sys.executable, "-m", "dvc", "repro", "package"], project)

    per_stage = []
    for stage in STAGES:
        _, result = timed([sys.executable, "-c", MEASURE, f"pipelines/{stage}.py"], project)
        figures = json.loads(result.stderr.strip().splitlines()[-1])
        per_stage.append((stage, figures["seconds"], figures["peak_mib"], figures["code"]))

    print(f"\nPipeline benchmark, rows: {rows}, cores: {__import__('os').cpu_count()}")
    print(f"{'dvc repro from scratch':<28}{total:>9.1f} s")
    print(f"{'dvc repro package, no-op':<28}{noop_model:>9.1f} s")
    print(f"{'dvc repro, no-op but drift':<28}{noop:>9.1f} s  (the drift check always runs)")
    print(f"\n{'stage (run alone)':<16}{'seconds':>10}{'peak MiB':>10}{'exit':>6}")
    for stage, seconds, peak, code in per_stage:
        print(f"{stage:<16}{seconds:>10.1f}{peak:>10.0f}{code:>6}")
    print(
        f"{'sum':<16}{sum(s for _, s, _, _ in per_stage):>10.1f}{max(p for _, _, p, _ in per_stage):>10.0f}"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"\nwork directory kept: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
