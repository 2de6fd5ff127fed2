"""How long does validation take on large data? GX (reference) vs the vectorised pandas engine.

Resamples the project's prepared data (the sample schema, whatever the data set is) with noise on the
numeric columns, then validates it against the committed suite with each engine.

    uv run python benchmarks/validation_benchmark.py [--rows 100000 1000000] [--engines gx pandas]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from german_credit_scoring import paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.lifecycle.validation import load_suite, validate_frame
from german_credit_scoring.settings import load_settings


def synthetic_frame(sample: pd.DataFrame, rows: int, numeric: list[str], seed: int = 0) -> pd.DataFrame:
    """``rows`` rows drawn from ``sample`` with noise on ``numeric`` columns, kept inside their range."""
    rng = np.random.default_rng(seed)
    frame = sample.iloc[rng.integers(0, len(sample), rows)].reset_index(drop=True)
    for name in numeric:
        column = frame[name]
        noise = rng.normal(0, 0.05 * float(column.std() or 1.0), rows)
        noisy = (column.to_numpy(dtype=float) + noise).clip(column.min(), column.max())
        frame[name] = noisy.round().astype(column.dtype) if column.dtype.kind in "iu" else noisy
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=["gx", "pandas"], choices=["gx", "pandas"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    features = load_features(settings.features)
    suite = load_suite(settings.validation.suite)
    sample = pd.concat([pd.read_parquet(paths.TRAIN), pd.read_parquet(paths.TEST)], ignore_index=True)
    numeric = [f.name for f in features.numeric if f.name in sample.columns]
    # Warm up once so the timings exclude importing GX and creating its context.
    validate_frame(sample, suite, "warm-up", "gx" if "gx" in args.engines else "pandas")
    print(f"{'rows':>10}  {'engine':<7} {'seconds':>8}  verdict")
    for rows in args.rows:
        frame = synthetic_frame(sample, rows, numeric)
        for engine in args.engines:
            started = time.perf_counter()
            report = validate_frame(frame, suite, f"synthetic-{rows}", engine)
            seconds = time.perf_counter() - started
            verdict = "pass" if report.success else f"fail ({len(report.failed_critical)} critical)"
            print(f"{rows:>10,}  {engine:<7} {seconds:>8.2f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
