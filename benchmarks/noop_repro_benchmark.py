"""A no-op `dvc repro`: the drift stage as a dependency of its window vs the old `always_changed` stage.

Side by side in one run, alternating, on one reproduced copy of the project: `dvc repro` with
dvc.yaml as committed (the drift stage depends on data/current/, so nothing runs) and with the drift
stage marked `always_changed: true` (what it was: the check ran on every repro). `dvc --version` is
the floor (importing DVC). Run: `uv run python benchmarks/noop_repro_benchmark.py [--project DIR]`
(without --project a throw-away copy is made and reproduced first, which takes minutes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="an already reproduced copy of the project")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    project = args.project
    if project is None:
        sys.path.insert(0, str(ROOT))
        from tests.e2e.helpers import copy_project

        project = copy_project(Path(tempfile.mkdtemp(prefix="noop-bench-")) / "project")
        timed([sys.executable, "-m", "dvc", "repro"], project)
    dvc_yaml = project / "dvc.yaml"
    committed = dvc_yaml.read_text()
    always = committed.replace(
        "    cmd: python pipelines/drift.py\n",
        "    cmd: python pipelines/drift.py\n    always_changed: true\n",
    )
    assert always != committed, "no drift stage found in dvc.yaml"
    dvc = [sys.executable, "-m", "dvc"]
    timed([*dvc, "repro"], project)  # warm: caches, and the window state the stage depends on
    times: dict[str, list[float]] = {"floor": [], "noop": [], "always": []}
    try:
        for _ in range(args.repeat):
            times["floor"].append(timed([*dvc, "--version"], project))
            dvc_yaml.write_text(committed)
            times["noop"].append(timed([*dvc, "repro"], project))
            dvc_yaml.write_text(always)
            times["always"].append(timed([*dvc, "repro"], project))
    finally:
        dvc_yaml.write_text(committed)
    print(f"{'median of ' + str(args.repeat):<44}{'seconds':>8}")
    print(f"{'dvc --version (import floor)':<44}{statistics.median(times['floor']):>8.2f}")
    print(f"{'dvc repro, nothing changed (drift on window)':<44}{statistics.median(times['noop']):>8.2f}")
    print(f"{'dvc repro, drift always_changed (before)':<44}{statistics.median(times['always']):>8.2f}")


if __name__ == "__main__":
    main()
