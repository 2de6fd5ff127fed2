"""Serving speed on loopback, side by side with the in-process floor.

    uv run python benchmarks/serving_benchmark.py [--requests 400] [--batches 50] [--json out.json] [--service ...]

Trains nothing if models/approved (or models/candidate) exists; otherwise fits the configured model on
the raw data into a temporary directory. Starts `bentoml serve` on 127.0.0.1 with a free port and a
temporary BENTOML_HOME, and measures:
- time from start to /readyz answering 200;
- single-row /predict at concurrency 1 and 8: p50, p99, requests/s;
- /predict_batch with 1,000-row batches: rows/s;
- the floor: the same pipeline called in-process (data.model_frame + predict_proba) for 1 row and
  1,000 rows.
Every loop is bounded in count and time; the server is always stopped.
Targets (2 cores): p99 <= 20 ms at concurrency 1; batch >= half the in-process floor; ready <= 15 s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JSON = {"content-type": "application/json"}


def _model_dir(settings, features, scratch: Path) -> Path:
    from german_credit_scoring import paths

    for candidate in (paths.APPROVED_DIR, paths.CANDIDATE_DIR):
        if (ROOT / candidate / "model.joblib").is_file() and (ROOT / candidate / "model.json").is_file():
            return ROOT / candidate
    import joblib

    from german_credit_scoring import data, transform
    from german_credit_scoring.ingest import ingest

    split = ingest(settings, features)
    include = settings.data.use_protected_as_features
    frame = data.model_frame(split.train, features, include)
    labels = data.positive_indicator(split.train[settings.data.target], settings.data.positive_label)
    pipeline = transform.build_pipeline(
        features, settings.model.type, settings.model.hyperparameters, settings.model.seed, include
    ).fit(frame, labels)
    out = scratch / "model"
    out.mkdir()
    joblib.dump(pipeline, out / "model.joblib")
    meta = {
        "version": "benchmark",
        "threshold": settings.decision_threshold,
        "positive_label": settings.data.positive_label,
        "target": settings.data.target,
        "features": list(frame.columns),
        "git_commit": "benchmark",
        "data_hashes": {},
    }
    (out / "model.json").write_text(json.dumps(meta))
    return out


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def _load(client_factory, path: str, payloads: list[bytes], concurrency: int, budget_s: float) -> dict:
    """POST every payload once with `concurrency` workers (bounded by count and by time).

    Payloads are JSON encoded before the clock starts: the load generator shares the machine's cores
    with the server, and encoding 1,000 records (~3 ms) is the client's cost, not the service's.
    """
    deadline = time.monotonic() + budget_s
    latencies: list[float] = []
    errors = 0

    def worker(chunk: list[bytes]) -> tuple[list[float], int]:
        own, bad = [], 0
        with client_factory() as client:
            for payload in chunk:
                if time.monotonic() > deadline:
                    break
                start = time.perf_counter()
                response = client.post(path, content=payload, headers=JSON)
                own.append(time.perf_counter() - start)
                bad += response.status_code != 200
        return own, bad

    chunks = [payloads[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for own, bad in pool.map(worker, chunks):
            latencies += own
            errors += bad
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,  # rates are computed from the unrounded time (20 batches take ~0.4 s)
        "latencies": latencies,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="single-row requests per concurrency level")
    parser.add_argument("--batches", type=int, default=50, help="1,000-row batch requests")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--service",
        default="serving.service:ScoringService",
        help="the service to serve (e.g. serving.service:BatchingScoringService)",
    )
    args = parser.parse_args(argv)

    import httpx

    os.chdir(ROOT)
    from german_credit_scoring import data
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import read_table
    from german_credit_scoring.scoring import load_scorer
    from german_credit_scoring.settings import load_settings

    settings = load_settings()
    features = load_features(settings.features)
    include = settings.data.use_protected_as_features
    raw = read_table(settings.data.path, settings.data.format)
    columns = [f.name for f in features.features if f.name in raw.columns]
    records = json.loads(raw[columns].to_json(orient="records"))
    batch_size = min(1000, settings.serving.max_batch_size)
    batch = (records * (batch_size // len(records) + 1))[:batch_size]
    results: dict = {"cores": os.cpu_count(), "service": args.service}

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model_dir = _model_dir(settings, features, scratch)

        # In-process floor: the same scorer the service uses, without HTTP.
        scorer = load_scorer(model_dir, features, include)
        for label, rows, repeat in (
            ("in_process_1_row", records[:1], 200),
            ("in_process_1000_rows", batch, 20),
        ):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                scorer.score(rows)
                times.append(time.perf_counter() - start)
            results[label] = {
                **_percentiles(times),
                "rows_per_s": round(len(rows) / float(np.median(times)), 1),
            }
        pipeline_only = []
        frame = data.model_frame(raw.head(1), features, include)
        for _ in range(200):
            start = time.perf_counter()
            scorer.pipeline.predict_proba(frame)
            pipeline_only.append(time.perf_counter() - start)
        results["in_process_pipeline_only_1_row"] = _percentiles(pipeline_only)

        env = {
            **os.environ,
            "BENTOML_HOME": str(scratch / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "PREDICTION_LOG": str(scratch / "predictions"),
        }
        tag = subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "import sys; from german_credit_scoring.packaging import import_model; "
                "print(import_model(sys.argv[1], sys.argv[2], sys.argv[3]).tag)",
                str(model_dir),
                settings.project.slug,
                str(settings.features),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        env["SCORING_MODEL_TAG"] = tag
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        server = subprocess.Popen(
            [
                str(BIN / "bentoml"),
                "serve",
                args.service,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=open(scratch / "server.log", "w"),  # noqa: SIM115 - lives as long as the server
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while time.monotonic() - started < 120:
                if server.poll() is not None:
                    print((scratch / "server.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            results["ready_s"] = round(time.monotonic() - started, 2)

            def factory():
                return httpx.Client(base_url=base, timeout=30)

            singles = [
                json.dumps({"record": records[i % len(records)]}).encode() for i in range(args.requests)
            ]
            _load(factory, "/predict", singles[:50], 1, 30)  # warm-up
            for concurrency in (1, 8):
                run = _load(factory, "/predict", singles, concurrency, 120)
                results[f"single_concurrency_{concurrency}"] = {
                    **_percentiles(run["latencies"]),
                    "requests_per_s": round(run["requests"] / run["seconds"], 1),
                    "requests": run["requests"],
                    "errors": run["errors"],
                }
            batches = [json.dumps({"records": batch}).encode()] * args.batches
            _load(factory, "/predict_batch", batches[:3], 1, 30)  # warm-up
            run = _load(factory, "/predict_batch", batches, 1, 180)
            results["batch_1000"] = {
                **_percentiles(run["latencies"]),
                "rows_per_s": round(run["requests"] * batch_size / run["seconds"], 1),
                "requests": run["requests"],
                "errors": run["errors"],
            }
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    floor = results["in_process_1000_rows"]["rows_per_s"]
    results["targets"] = {
        "p99_concurrency_1_le_20ms": results["single_concurrency_1"]["p99_ms"] <= 20,
        "batch_ge_half_in_process": results["batch_1000"]["rows_per_s"] >= floor / 2,
        "ready_le_15s": results["ready_s"] <= 15,
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
