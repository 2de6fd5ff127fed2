"""Fairness metrics at scale: this project's vectorised implementation next to fairlearn.

    uv run python benchmarks/fairness_benchmark.py [--rows 1000000] [--groups 2 50]

Both compute, for every attribute, per-group selection rate, TPR and FPR plus the demographic parity
difference/ratio and the equalized odds difference; the script also checks that they agree.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def synthetic(rows: int, group_counts: list[int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"y_true": rng.integers(0, 2, rows), "decision": rng.integers(0, 2, rows)})
    for index, count in enumerate(group_counts):
        frame[f"group__attr{index}"] = rng.choice([f"g{i}" for i in range(count)], rows)
    return frame


def ours(frame: pd.DataFrame, attributes: list[str]) -> dict:
    from german_credit_scoring.lifecycle.fairness import fairness_report

    return fairness_report(frame, attributes)


def fairlearn(frame: pd.DataFrame, attributes: list[str]) -> dict:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    y, d = frame["y_true"], frame["decision"]
    result = {}
    for name in attributes:
        groups = frame[f"group__{name}"]
        by_group = MetricFrame(
            metrics={"sr": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
            y_true=y,
            y_pred=d,
            sensitive_features=groups,
        ).by_group
        result[name] = {
            "by_group": by_group,
            "demographic_parity_difference": demographic_parity_difference(y, d, sensitive_features=groups),
            "demographic_parity_ratio": demographic_parity_ratio(y, d, sensitive_features=groups),
            "equalized_odds_difference": equalized_odds_difference(y, d, sensitive_features=groups),
        }
    return result


def timed(function, *args) -> tuple[float, dict]:
    start = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 50], help="groups per attribute")
    args = parser.parse_args()

    frame = synthetic(args.rows, args.groups)
    attributes = [f"attr{i}" for i in range(len(args.groups))]
    ours_seconds, mine = timed(ours, frame, attributes)
    theirs_seconds, theirs = timed(fairlearn, frame, attributes)

    for name in attributes:
        for metric in (
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
        ):
            assert abs(mine[name][metric] - theirs[name][metric]) < 1e-9, (name, metric)
    print(f"rows: {args.rows:,}  attributes: {len(attributes)}  groups per attribute: {args.groups}")
    print(f"{'implementation':<16}{'seconds':>10}")
    print(f"{'ours':<16}{ours_seconds:>10.3f}")
    print(f"{'fairlearn':<16}{theirs_seconds:>10.3f}")
    print(f"speed-up: {theirs_seconds / ours_seconds:.1f}x; summaries agree to 1e-9")


if __name__ == "__main__":
    main()
