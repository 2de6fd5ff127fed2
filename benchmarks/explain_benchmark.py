"""Explaining 1,000 records: this project's exact explainers beside the ``shap`` package's, in one run.

    uv run python benchmarks/explain_benchmark.py [--records 1000] [--repeat 40] [--json out.json]

For each model type (``params.yaml``'s hyperparameters, fitted on the bundled data's training split;
the records are its rows, repeated up to ``--records``), one thread (``threadpoolctl``, as the service):
- **ours**: ``PipelineExplainer.contributions`` on the model matrix (per input feature, what the reasons
  are made of; trees: cells and table rows, cells included), beside **shap** (``TreeExplainer``,
  path-dependent, raw log-odds; ``LinearExplainer`` with our documented baseline) on the same matrix,
  with the largest difference between the two (shap's values summed per input feature);
- for ``hist_gradient_boosting``, the tables' rows summed per input for a batch (the part reasons add
  to it besides their text): as shipped (``explain.kernels``, a compiled loop), and the numpy paths
  measured for it: ``take`` of whole rows then ``bincount`` (the fallback without numba), ``take`` then a
  matrix product with a 0/1 spread matrix;
- the reasons' JSON text (top ``serving.reasons_top_k``, 4 when 0) from numpy's object array (linear
  models, small batches) and from the compiled loop (tree models), byte for byte the same.

Each is timed **warm** (the same call repeated) and **cold** (a 64 MB sweep between calls, as a
service's other work leaves the caches between requests), median of ``--repeat`` (shap: an eighth).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SWEEP = np.ones(8 * 1024 * 1024)  # 64 MB: larger than the last-level cache


def _median_ms(call: Callable[[], object], repeat: int, cold: bool) -> float:
    times = []
    for _ in range(repeat):
        if cold:
            SWEEP.sum()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 3)


def _timed(call: Callable[[], object], repeat: int) -> dict[str, float]:
    return {"warm_ms": _median_ms(call, repeat, False), "cold_ms": _median_ms(call, repeat, True)}


def _fit(settings, features, model_type: str):
    from german_credit_scoring import data
    from german_credit_scoring.lifecycle import transform
    from german_credit_scoring.lifecycle.ingest import ingest

    split = ingest(settings, features)
    include = settings.data.use_protected_as_features
    frame = data.model_frame(split.train, features, include)
    labels = data.positive_indicator(split.train[settings.data.target], settings.data.positive_label)
    params = getattr(settings.model, model_type).model_dump()
    pipeline = transform.build_pipeline(features, model_type, params, settings.model.seed, include)
    return pipeline.fit(frame, labels), frame


def _tree_steps(tree, matrix: np.ndarray, repeat: int) -> dict:
    """The tables' rows summed per input for a batch: shipped, and the numpy paths measured for it."""
    _, cells = tree.margins(matrix)
    if cells is None:
        return {"skipped": "the tables do not predict this model (a missing value or an untabled tree)"}
    n = cells.shape[1]
    spread = []
    for _, _, _, _, outputs in tree.groups:
        matrix01 = np.zeros((outputs.size, tree.outputs))
        matrix01[np.arange(outputs.size), outputs.ravel()] = 1.0
        spread.append(matrix01)

    def product(passes: int = 64) -> np.ndarray:
        out = np.zeros((n, tree.outputs))
        for i in range(0, n, passes):
            m = min(passes, n - i)
            part = out[i : i + m]
            for (_, first, last, rows, _), matrix01 in zip(tree.groups, spread, strict=True):
                values = np.take(rows, cells[first:last, i : i + m].T, mode="clip").view(np.float64)
                part += values.reshape(m, -1) @ matrix01
        return out

    shipped = tree._tables(cells)
    for other in (tree._tables_numpy(cells), product()):
        assert np.allclose(other, shipped, rtol=0, atol=1e-12)
    return {
        "trees": len(tree._trees),
        "compiled": tree.kernel is not None,
        "table_mb": round(tree.flat.nbytes / 1e6, 1),
        "values_per_record": int(sum(outputs.size for _, _, _, _, outputs in tree.groups)),
        "distinct_rows_read": int(
            sum(np.unique(cells[first:last]).size for _, first, last, _, _ in tree.groups)
        ),
        "shipped": _timed(lambda: tree._tables(cells), repeat),
        "numpy_take_and_bincount": _timed(lambda: tree._tables_numpy(cells), repeat),
        "numpy_take_and_matrix_product": _timed(product, repeat),
    }


def _measure(settings, features, model_type: str, records: int, repeat: int) -> dict:
    import shap

    from german_credit_scoring.explain.contributions import PipelineExplainer
    from german_credit_scoring.explain.reasons import ReasonCodes

    pipeline, frame = _fit(settings, features, model_type)
    names = list(frame.columns)
    explainer = PipelineExplainer(pipeline, names)
    rows = np.resize(np.arange(len(frame)), records)
    matrix = explainer.transformer_matrix(frame.iloc[rows])
    if model_type == "logistic_regression":
        baseline = explainer.explainer.baseline
        oracle = shap.LinearExplainer(pipeline[-1], (baseline, np.zeros((baseline.size,) * 2)))
    else:
        oracle = shap.TreeExplainer(pipeline[-1])
    ours = explainer.contributions(matrix)
    theirs = explainer.transformer.group(np.asarray(oracle.shap_values(matrix)))
    decisions = explainer.log_odds(matrix) >= 0
    values = {name: frame[name].iloc[rows].tolist() for name in names}
    top_k = settings.serving.reasons_top_k or 4
    codes = ReasonCodes(features, names, top_k)
    compiled = ReasonCodes(features, names, top_k, compiled=True)
    assert compiled.reasons_json(ours, decisions, values) == codes.reasons_json(ours, decisions, values)
    entry: dict = {
        "ours": _timed(lambda: explainer.contributions(matrix), repeat),
        "shap": _timed(lambda: oracle.shap_values(matrix), max(3, repeat // 8)),
        "max_abs_difference": float(np.abs(ours - theirs).max()),
        "reasons_json": _timed(lambda: codes.reasons_json(ours, decisions, values), repeat),
        "reasons_json_compiled": _timed(lambda: compiled.reasons_json(ours, decisions, values), repeat),
    }
    if model_type == "hist_gradient_boosting":
        entry["tree_sums"] = _tree_steps(explainer.explainer, matrix, repeat)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    from threadpoolctl import threadpool_limits

    from german_credit_scoring.contract import load_features
    from german_credit_scoring.settings import load_settings

    settings = load_settings()
    features = load_features(settings.features)
    results: dict = {"cores": os.cpu_count(), "records": args.records, "load_average_1min": {}}
    results["load_average_1min"]["start"] = round(os.getloadavg()[0], 2)
    with threadpool_limits(limits=1):
        for model_type in ("logistic_regression", "hist_gradient_boosting"):
            results[model_type] = _measure(settings, features, model_type, args.records, args.repeat)
            print(model_type, json.dumps(results[model_type], indent=1), flush=True)
    results["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
