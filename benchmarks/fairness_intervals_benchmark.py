"""Intervals on group fairness figures: this project's posterior draws next to fairlearn's bootstrap.

    uv run python benchmarks/fairness_intervals_benchmark.py [--rows 100000] [--boot 100]

Both give a 95% interval for each group's selection rate and for the demographic parity difference.
fairlearn (``MetricFrame(n_boot=..., ci_quantiles=...)``) resamples rows and recomputes every metric per
replicate; the project draws each group's rate from its posterior (Jeffreys prior), whose cost does not
grow with the row count. The script prints both timings and the largest gap between the two methods'
interval ends (they estimate the same thing and should agree to about a percentage point).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c"], size=rows, p=[0.6, 0.3, 0.1])
    rate = pd.Series(groups).map({"a": 0.30, "b": 0.40, "c": 0.35}).to_numpy()
    return pd.DataFrame(
        {"y_true": rng.integers(0, 2, rows), "decision": (rng.random(rows) < rate).astype(int), "g": groups}
    )


def ours(frame: pd.DataFrame, samples: int):
    from german_credit_scoring.lifecycle.fairness import attribute_fairness
    from german_credit_scoring.settings import FairnessSettings

    result = attribute_fairness(
        frame["y_true"], frame["decision"], frame["g"], settings=FairnessSettings(bootstrap=samples)
    )
    groups = {
        g: (row["selection_rate_low"], row["selection_rate_high"]) for g, row in result["groups"].items()
    }
    return groups, result["intervals"]["demographic_parity_difference"]


def fairlearn(frame: pd.DataFrame, boot: int):
    from fairlearn.metrics import MetricFrame, selection_rate

    mf = MetricFrame(
        metrics=selection_rate, y_true=frame["y_true"], y_pred=frame["decision"], sensitive_features=frame["g"],
        n_boot=boot, ci_quantiles=[0.025, 0.975], random_state=0,
    )  # fmt: skip
    low, high = mf.by_group_ci
    groups = {g: (float(low[g]), float(high[g])) for g in low.index}
    dl, dh = mf.difference_ci()
    return groups, {"low": float(dl), "high": float(dh)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--boot", type=int, default=100, help="fairlearn's bootstrap replicates")
    parser.add_argument("--draws", type=int, default=1000, help="this project's posterior draws")
    args = parser.parse_args()
    frame = synthetic(args.rows)
    start = time.perf_counter()
    our_groups, our_dpd = ours(frame, args.draws)
    our_time = time.perf_counter() - start  # first call: imports included, as for fairlearn below
    start = time.perf_counter()
    ours(frame, args.draws)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    their_groups, their_dpd = fairlearn(frame, args.boot)
    their_time = time.perf_counter() - start
    gap = max(abs(a - b) for g in our_groups for a, b in zip(our_groups[g], their_groups[g], strict=True))
    gap = max(gap, abs(our_dpd["low"] - their_dpd["low"]), abs(our_dpd["high"] - their_dpd["high"]))
    print(f"rows {args.rows:,}: ours {our_time:.2f} s, warm {warm:.2f} s ({args.draws} draws), "
          f"fairlearn {their_time:.2f} s ({args.boot} bootstrap replicates); largest gap between interval ends {gap:.4f}")  # fmt: skip
    print(f"parity difference interval: ours {our_dpd['low']:.4f}-{our_dpd['high']:.4f}, "
          f"fairlearn {their_dpd['low']:.4f}-{their_dpd['high']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
