"""Serving speed on loopback, side by side with an empty BentoML service and with reasons off.

    uv run python benchmarks/serving_benchmark.py [--requests 400] [--batches 50] [--json out.json]
        [--model-type hist_gradient_boosting] [--service serving.service:ScoringService]
        [--empty-service benchmarks.empty_service:EmptyService]

Trains nothing if models/approved (or models/candidate) exists; otherwise fits the configured model on
the raw data into a temporary directory. ``--model-type`` always fits that model type (``model.type``
values, with its params.yaml hyperparameters) into the temporary directory instead. Starts three `bentoml serve` processes on 127.0.0.1 (free
ports, a temporary BENTOML_HOME): the empty service (the framework's floor), the scoring service with
reasons (``serving.reasons_top_k``, 4 when that is 0) and the same service with reasons off; then
measures them with the same client (Python ``http.client``, a new connection per request), single
records at concurrency 1 and batches round-robin across the servers (the same load for all three on a
shared machine), concurrency 8 as a burst per server:
- time from start to /readyz answering 200;
- single-row /predict at concurrency 1 and 8: p50, p99, requests/s;
- /predict_batch with 1,000-row batches: rows/s (not for the empty service);
- in-process: the scorer on 1 row and 1,000 rows, with and without reasons (as JSON, the service's
  path), and the pipeline alone, with the service's thread cap (``SCORING_THREADS``, 1);
- counterfactual hints (``serving.hints_for``'s records): in process for 1 and 100 records, scoring
  included, and ``/counterfactual`` at concurrency 1.
The load average (1 minute) before and after is recorded: the machine is shared, figures on a loaded
machine are not comparable. Every loop is bounded in count and time; the servers are always stopped.
Targets (2 cores): with reasons, p50 <= 5 ms at concurrency 1 and >= 200 requests/s at concurrency 8;
reasons add <= 2 ms to the single-record p99 and cost <= 30% of batch throughput; batch >= half the
in-process floor; ready <= 15 s.
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


def _model_dir(settings, features, scratch: Path, fit: bool = False) -> Path:
    from german_credit_scoring import paths

    for candidate in () if fit else (paths.APPROVED_DIR, paths.CANDIDATE_DIR):
        if (ROOT / candidate / "model.joblib").is_file() and (ROOT / candidate / "model.json").is_file():
            return ROOT / candidate
    import joblib

    from german_credit_scoring import data
    from german_credit_scoring.lifecycle import transform
    from german_credit_scoring.lifecycle.ingest import ingest

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


def _load(base: str, path: str, payloads: list[bytes], concurrency: int, budget_s: float) -> dict:
    """POST every payload once with `concurrency` workers (bounded by count and by time).

    Each request opens a new connection (``http.client``, the cheapest Python client), as a client
    that does not pool connections would. Payloads are JSON encoded before the clock starts: the load
    generator shares the machine's cores with the server, and encoding 1,000 records (~3 ms) is the
    client's cost, not the service's.
    """
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(base).hostname, urlsplit(base).port
    deadline = time.monotonic() + budget_s
    latencies: list[float] = []
    errors = 0

    def worker(chunk: list[bytes]) -> tuple[list[float], int]:
        own, bad = [], 0
        for payload in chunk:
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            connection = http.client.HTTPConnection(host, port, timeout=30)
            try:
                connection.request("POST", path, body=payload, headers=JSON)
                response = connection.getresponse()
                response.read()
                status = response.status
            finally:
                connection.close()
            own.append(time.perf_counter() - start)
            bad += status != 200
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


def _start(service: str, env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(BIN / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "w"),  # noqa: SIM115 - lives as long as the server
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(process: subprocess.Popen, base: str, log_path: Path) -> float | None:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < 180:
        if process.poll() is not None:
            print(log_path.read_text()[-2000:], file=sys.stderr)
            return None
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return round(time.monotonic() - started, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    print(f"{base}: not ready in 180 s\n{log_path.read_text()[-2000:]}", file=sys.stderr)
    return None


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _measure(servers: dict[str, str], singles: list[bytes], batches: list[bytes], batch_size: int) -> dict:
    """Every server with the same client, interleaved so that each sees the same machine: single records
    at concurrency 1 and 1,000-row batches go round-robin (one request to each server in turn), so a
    change in the shared machine's load shifts all of them alike and their ratios stay comparable;
    concurrency 8 is a burst per server, one after the other."""
    out: dict = {name: {} for name in servers}
    for base in servers.values():
        _load(base, "/predict", singles[:50], 1, 30)  # warm-up
    single: dict[str, list[float]] = {name: [] for name in servers}
    single_errors = dict.fromkeys(servers, 0)
    for payload in singles:
        for name, base in servers.items():
            run = _load(base, "/predict", [payload], 1, 30)
            single[name] += run["latencies"]
            single_errors[name] += run["errors"]
    for name, latencies in single.items():
        out[name]["single_concurrency_1"] = {
            **_percentiles(latencies),
            "requests_per_s": round(len(latencies) / sum(latencies), 1),
            "requests": len(latencies),
            "errors": single_errors[name],
        }
    for name, base in servers.items():
        run = _load(base, "/predict", singles, 8, 120)
        out[name]["single_concurrency_8"] = {
            **_percentiles(run["latencies"]),
            "requests_per_s": round(run["requests"] / run["seconds"], 1),
            "requests": run["requests"],
            "errors": run["errors"],
        }
    batched = {name: base for name, base in servers.items() if name != "empty"}
    for base in batched.values():
        _load(base, "/predict_batch", batches[:3], 1, 30)  # warm-up
    timed: dict[str, list[float]] = {name: [] for name in batched}
    errors = dict.fromkeys(batched, 0)
    for payload in batches:
        for name, base in batched.items():
            run = _load(base, "/predict_batch", [payload], 1, 60)
            timed[name] += run["latencies"]
            errors[name] += run["errors"]
    for name, latencies in timed.items():
        out[name]["batch_1000"] = {
            **_percentiles(latencies),
            "rows_per_s": round(len(latencies) * batch_size / sum(latencies), 1),
            "requests": len(latencies),
            "errors": errors[name],
        }
    return out


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
    parser.add_argument(
        "--model-type",
        choices=["logistic_regression", "hist_gradient_boosting"],
        help="fit this model type (params.yaml's hyperparameters) instead of using models/approved",
    )
    parser.add_argument(
        "--empty-service",
        default="benchmarks.empty_service:EmptyService",
        help="the framework's floor, served beside it with the same client",
    )
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    from german_credit_scoring import data
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import read_table
    from german_credit_scoring.lifecycle.scoring import load_scorer
    from german_credit_scoring.settings import load_settings

    settings = load_settings()
    if args.model_type:
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"type": args.model_type})}
        )
    features = load_features(settings.features)
    include = settings.data.use_protected_as_features
    raw = read_table(settings.data.path, settings.data.format)
    columns = [f.name for f in features.features if f.name in raw.columns]
    records = json.loads(raw[columns].to_json(orient="records"))
    batch_size = min(1000, settings.serving.max_batch_size)
    batch = (records * (batch_size // len(records) + 1))[:batch_size]
    results: dict = {
        "cores": os.cpu_count(),
        "load_average_1min": {"start": round(os.getloadavg()[0], 2)},
        "service": args.service,
        "empty_service": args.empty_service,
    }

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model_dir = _model_dir(settings, features, scratch, fit=bool(args.model_type))

        # In-process floor: the same scorer the service uses, without HTTP, with its thread cap.
        from threadpoolctl import threadpool_limits

        scorer = load_scorer(model_dir, features, include)
        threads = threadpool_limits(limits=int(os.environ.get("SCORING_THREADS", "1")))  # after loading
        results["model_type"] = type(scorer.pipeline[-1]).__name__
        k = settings.serving.reasons_top_k or 4
        for label, rows, repeat, top_k in (
            ("in_process_1_row", records[:1], 200, 0),
            ("in_process_1000_rows", batch, 20, 0),
            ("in_process_1_row_reasons", records[:1], 200, k),
            ("in_process_1000_rows_reasons", batch, 20, k),
        ):
            names = scorer.input_names
            columns = {name: [row.get(name) for row in rows] for name in names}
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                scorer.score_columns(columns, top_k, as_json=True)
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
        # Counterfactual hints of records whose decision gets them (serving.hints_for), scoring included
        from german_credit_scoring.explain.counterfactual import Counterfactuals

        hinter = Counterfactuals(scorer, settings.serving.hints_top_k or 3, settings.serving.hints_for)
        names = scorer.input_names
        everyone = scorer.score_columns({name: [row.get(name) for row in batch] for name in names})
        hinted_rows = [row for row, d in zip(batch, everyone.decisions, strict=True) if hinter.wanted(d)]
        for label, rows, repeat in (
            ("in_process_counterfactual_1_row", hinted_rows[:1], 100),
            ("in_process_counterfactual_100_rows", hinted_rows[:100], 5),
        ):
            if not rows:
                continue
            columns = {name: [row.get(name) for row in rows] for name in names}
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                scores = scorer.score_columns(columns)
                hinter.hints(columns, scores.probabilities, scores.decisions)
                times.append(time.perf_counter() - start)
            results[label] = {
                **_percentiles(times),
                "rows_per_s": round(len(rows) / float(np.median(times)), 1),
            }
        results["fast_path"] = scorer.fast is not None
        threads.restore_original_limits()

        env = {
            **os.environ,
            "BENTOML_HOME": str(scratch / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "PREDICTION_LOG": str(scratch / "predictions"),
            "SCORING_ALLOW_UNVERIFIED": "true",  # a model trained here has no signed manifest
        }
        tag = subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "import sys; from german_credit_scoring.lifecycle.packaging import import_model; "
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
        top_k = settings.serving.reasons_top_k or 4
        # Three servers, started together and measured one after the other with the same client:
        # the framework's floor, this service with reasons, and this service with reasons off.
        variants = {
            "empty": (args.empty_service, {}),
            "reasons_on": (args.service, {"SCORING_REASONS_TOP_K": str(top_k)}),
            "reasons_off": (args.service, {"SCORING_REASONS_TOP_K": "0"}),
        }
        servers = {
            name: _start(service, {**env, **extra}, scratch / f"{name}.log")
            for name, (service, extra) in variants.items()
        }
        try:
            for name, (process, base) in servers.items():
                ready = _wait_ready(process, base, scratch / f"{name}.log")
                if ready is None:
                    return 1
                results.setdefault("ready_s", {})[name] = ready
            singles = [
                json.dumps({"record": records[i % len(records)]}).encode() for i in range(args.requests)
            ]
            batches = [json.dumps({"records": batch}).encode()] * args.batches
            measured = _measure(
                {name: base for name, (_, base) in servers.items()}, singles, batches, batch_size
            )
            results.update(measured)
            if hinted_rows:  # /counterfactual at concurrency 1, on records whose decision gets hints
                payloads = [
                    json.dumps({"record": hinted_rows[i % len(hinted_rows)]}).encode() for i in range(100)
                ]
                base = servers["reasons_on"][1]
                _load(base, "/counterfactual", payloads[:5], 1, 30)  # warm-up
                run = _load(base, "/counterfactual", payloads, 1, 60)
                results["counterfactual_concurrency_1"] = {
                    **_percentiles(run["latencies"]),
                    "errors": run["errors"],
                }
        finally:
            for process, _ in servers.values():
                _stop(process)

    on, off, empty = results["reasons_on"], results["reasons_off"], results["empty"]
    results["reasons_top_k"] = top_k
    results["reasons_cost"] = {
        "single_p99_ms_added": round(
            on["single_concurrency_1"]["p99_ms"] - off["single_concurrency_1"]["p99_ms"], 2
        ),
        "batch_throughput_ratio": round(on["batch_1000"]["rows_per_s"] / off["batch_1000"]["rows_per_s"], 3),
    }
    results["vs_empty_service"] = {
        "single_p50_ms_added": round(
            on["single_concurrency_1"]["p50_ms"] - empty["single_concurrency_1"]["p50_ms"], 2
        ),
        "requests_per_s_ratio_c8": round(
            on["single_concurrency_8"]["requests_per_s"] / empty["single_concurrency_8"]["requests_per_s"], 3
        ),
    }
    floor = results["in_process_1000_rows"]["rows_per_s"]
    results["targets"] = {
        "single_p50_le_5ms": on["single_concurrency_1"]["p50_ms"] <= 5,
        "c8_ge_200_requests_per_s": on["single_concurrency_8"]["requests_per_s"] >= 200,
        "reasons_p99_cost_le_2ms": results["reasons_cost"]["single_p99_ms_added"] <= 2,
        "reasons_batch_drop_le_30pct": results["reasons_cost"]["batch_throughput_ratio"] >= 0.7,
        "batch_ge_half_in_process": on["batch_1000"]["rows_per_s"] >= floor / 2,
        "ready_le_15s": results["ready_s"]["reasons_on"] <= 15,
    }
    results["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
