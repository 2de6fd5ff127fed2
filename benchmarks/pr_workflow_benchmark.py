"""Time the pull-request workflow as GitHub would run it, under act on this machine: cold and warm.

    uv run python benchmarks/pr_workflow_benchmark.py [--json out.json]

Runs `pr.yml` on a `pull_request` event in a fresh clone of this repository (tests/act's harness: act
in host mode, stand-in actions and GitHub API): **cold** with new, empty job environments (uv's
download cache warm, as `setup-uv`'s cache restores it), as the test suite's harness runs it (each job's
environment seeded with this process's compiled bytecode) and, in a second clone, without the seeding
(every job compiles its imports, as on a GitHub runner); then **warm** (the first clone's environments
synced). The seeding needs this process's bytecode cache: run it with the environment `bootstrap.py`
gives (``PYTHONPYCACHEPREFIX=.venv/pycache``, no ``PYTHONDONTWRITEBYTECODE``). Reports wall time from the event to the last comment, and the time spent in
setup steps (checkout, uv, artifacts) against stage work (dvc repro, report, comment), summed over jobs
from act's own step timings. With two cores the jobs run one after another (each stage needs the one
before), as they do on GitHub except for the test job, which runs beside them there.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.act.harness import Act, failed_jobs  # noqa: E402
from tests.act.test_workflows_act import pull_request_event  # noqa: E402
from tests.e2e.helpers import git  # noqa: E402

STAGE_WORK = (
    "dvc repro",
    "mlops report",
    "mlops comment",
    "mlops lock-check",
    "mlops take-lock",
    "mlops handover",
)


def seconds(value: str, unit: str | None) -> float:
    if unit == "ms":
        return float(value) / 1000
    if unit == "µs":
        return float(value) / 1e6
    return float(value)


def split(log: str) -> dict[str, float]:
    """Sum act's step durations into setup and stage work (one step counted once, as act reports it)."""
    totals = {"setup": 0.0, "stage": 0.0}
    for line in log.splitlines():
        m = re.search(r"✅\s+Success - (Pre|Main|Post) (.*?) \[((?:\d+m)?[0-9.]+)(ms|µs|s)\]$", line)
        if not m or "Complete job" in line or "Set up job" in line:
            continue
        raw, unit = m.group(3), m.group(4)
        minutes = 0.0
        if "m" in raw:
            mins, raw = raw.split("m", 1)
            minutes = float(mins) * 60
        value = minutes + seconds(raw, unit)
        kind = "stage" if any(word in m.group(2) for word in STAGE_WORK) else "setup"
        totals[kind] += value
    return totals


def run_once(act: Act, run_id: int, head: str) -> dict[str, float]:
    started = time.perf_counter()
    result = act.run("pull_request", pull_request_event(head), run_id, workflow="pr.yml")
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pr.yml failed under act (run {run_id}):\n{failed_jobs(result.stdout)}")
    return {"wall": wall, **split(result.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    try:
        rows = {}
        for name, seed in (("cold, jobs compile their imports", False), ("cold, seeded bytecode", True)):
            project = work / name.replace(" ", "-").replace(",", "") / "project"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(project)], check=True)
            git(project, "checkout", "-q", "-B", "main")
            git(project, "remote", "set-url", "origin", "https://github.com/acme/credit.git")
            act = Act(project, project.parent, seed_bytecode=seed)
            head = git(project, "rev-parse", "HEAD").strip()
            try:
                rows[name] = run_once(act, 1, head)
                if seed:
                    rows["warm, seeded bytecode"] = run_once(act, 2, head)
            finally:
                act.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| pr.yml under act (2 cores) | event → last comment | setup steps | stage work |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall'] / 60:.1f} min | {row['setup']:.0f} s | {row['stage']:.0f} s |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
