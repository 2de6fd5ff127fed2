"""Drift simulator: realistic current batches with a known kind of drift, to test the monitoring.

Rows are resampled (with replacement, seeded) from held-out data, so a "none" batch has exactly the
reference population; each other kind changes one thing a real deployment sees change:

- ``covariate``: chosen features move (numeric ones shift by ``magnitude`` standard deviations,
  categorical ones send a share of rows to their rarest category);
- ``prior``: the share of the positive label changes (rows resampled per class; default +0.25). Features
  are not edited, but those that predict the label move with it: a large prior shift shows on them too;
- ``new_categories``: a share of a categorical feature's values become categories never seen before;
- ``concept``: the label flips for a share of rows in one region (a numeric feature above its median):
  the inputs look the same, the relation to the outcome does not.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from german_credit_scoring import io, paths
from german_credit_scoring.contract import FeatureSet, load_features
from german_credit_scoring.errors import DataError, ProjectError, SettingsError
from german_credit_scoring.settings import Settings, load_settings

log = logging.getLogger(__name__)

KINDS = ("none", "covariate", "prior", "new_categories", "concept")
DEFAULT_MAGNITUDE = {"none": 0.0, "covariate": 1.0, "prior": None, "new_categories": 0.2, "concept": 0.8}


@dataclass(frozen=True)
class Simulation:
    frame: pd.DataFrame
    kind: str
    touched: list[str] = field(default_factory=list)  # the features whose distribution was changed
    description: str = ""


def _model_inputs(features: FeatureSet, frame: pd.DataFrame, numeric: bool) -> list[str]:
    return [
        f.name
        for f in features.model_inputs()
        if f.is_numeric == numeric and f.name in frame.columns and frame[f.name].notna().any()
    ]


def _default_columns(kind: str, features: FeatureSet, frame: pd.DataFrame) -> list[str]:
    numeric, categorical = _model_inputs(features, frame, True), _model_inputs(features, frame, False)
    if kind == "covariate":
        return numeric[:1] + categorical[:1]
    if kind == "new_categories":
        return categorical[:1]
    if kind == "concept":
        return numeric[:1]
    return []


def _resample(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.integers(0, len(frame), size=rows)].reset_index(drop=True)


def _shift_numeric(column: pd.Series, magnitude: float, is_int: bool) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce").astype(float)
    std = float(values.std()) or 1.0
    shifted = values + magnitude * std
    if is_int:
        shifted = shifted.round()
        return shifted.astype("Int64") if shifted.isna().any() else shifted.astype("int64")
    return shifted


def _to_rarest(column: pd.Series, share: float, rng: np.random.Generator) -> pd.Series:
    counts = column.dropna().astype(str).value_counts()
    if counts.empty:
        return column
    rarest = counts.index[-1] if len(counts) > 1 else counts.index[0]
    out = column.astype(object).copy()
    out[rng.random(len(out)) < share] = rarest
    return out


def simulate(
    frame: pd.DataFrame,
    kind: str,
    features: FeatureSet,
    target: str,
    positive_label: str,
    rows: int | None = None,
    seed: int = 0,
    columns: list[str] | None = None,
    magnitude: float | None = None,
) -> Simulation:
    """A resampled batch of ``rows`` rows from ``frame`` with one kind of drift applied."""
    if kind not in KINDS:
        raise SettingsError(f"unknown drift kind {kind!r}: use one of {', '.join(KINDS)}")
    if len(frame) == 0:
        raise DataError("cannot simulate from an empty frame")
    rng = np.random.default_rng(seed)
    rows = int(rows or len(frame))
    magnitude = DEFAULT_MAGNITUDE[kind] if magnitude is None else float(magnitude)
    columns = list(columns) if columns else _default_columns(kind, features, frame)
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise DataError(f"columns {unknown} are not in the data (columns: {list(frame.columns)})")

    if kind == "none":
        return Simulation(_resample(frame, rows, rng), kind, [], "resampled, no drift")

    if kind == "prior":
        if target not in frame.columns:
            raise DataError(f"prior shift needs the target column {target!r}")
        positive = (frame[target].astype(str) == str(positive_label)).to_numpy()
        if positive.all() or not positive.any():
            raise DataError(f"prior shift needs both classes in {target!r}")
        base = float(positive.mean())
        rate = min(0.9, base + 0.25) if magnitude is None else magnitude
        if not 0 < rate < 1:
            raise SettingsError(f"prior shift: the new positive rate must be in (0, 1), got {rate}")
        n_pos = round(rows * rate)
        pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
        take = np.concatenate(
            [
                rng.choice(pos_idx, size=n_pos, replace=True),
                rng.choice(neg_idx, size=rows - n_pos, replace=True),
            ]
        )
        rng.shuffle(take)
        batch = frame.iloc[take].reset_index(drop=True)
        return Simulation(batch, kind, [target], f"positive rate {base:.2f} -> {rate:.2f}")

    batch = _resample(frame, rows, rng)
    if not columns:
        raise SettingsError(f"{kind} drift needs at least one column to act on (--features)")

    if kind == "covariate":
        for name in columns:
            definition = features.get(name) if name in features.names else None
            numeric = definition.is_numeric if definition else pd.api.types.is_numeric_dtype(batch[name])
            if numeric:
                is_int = (
                    definition.dtype == "int" if definition else pd.api.types.is_integer_dtype(batch[name])
                )
                batch[name] = _shift_numeric(batch[name], magnitude, is_int)
            else:
                batch[name] = _to_rarest(batch[name], min(1.0, 0.5 * magnitude), rng)
        return Simulation(
            batch, kind, columns, f"covariate shift of size {magnitude:g} on {', '.join(columns)}"
        )

    if kind == "new_categories":
        for name in columns:
            hit = rng.random(rows) < magnitude
            new_values = np.array([f"new_{name}_{i}" for i in range(1, 4)], dtype=object)
            column = batch[name].astype(object).copy()
            column[hit] = new_values[rng.integers(0, len(new_values), size=int(hit.sum()))]
            batch[name] = column
        return Simulation(batch, kind, columns, f"{magnitude:.0%} unseen categories in {', '.join(columns)}")

    # concept: the outcome changes where a feature is high; the inputs do not change at all
    if target not in batch.columns:
        raise DataError(f"concept drift needs the target column {target!r}")
    labels = batch[target].astype(str)
    classes = sorted(set(labels) | {str(positive_label)})
    if len(classes) != 2:
        raise DataError(f"concept drift flips a binary target; {target!r} has classes {classes}")
    other = next(c for c in classes if c != str(positive_label))
    region = np.ones(rows, dtype=bool)
    for name in columns:
        values = pd.to_numeric(batch[name], errors="coerce")
        region &= (values >= values.median()).to_numpy()
    flip = region & (rng.random(rows) < magnitude)
    flipped = np.where(labels.to_numpy() == str(positive_label), other, str(positive_label))
    batch[target] = np.where(flip, flipped, labels.to_numpy()).astype(object)
    return Simulation(
        batch,
        kind,
        [target],
        f"labels flipped for {flip.mean():.0%} of rows (where {' & '.join(columns)} >= median)",
    )


def _json_value(value):
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    return value


def to_log_records(
    frame: pd.DataFrame,
    features: FeatureSet,
    target: str,
    probabilities: np.ndarray | None = None,
    threshold: float = 0.5,
    include_labels: bool = True,
    model_version: str = "simulated",
    seed: int = 0,
) -> list[dict]:
    """The service's prediction-log shape: inputs, outputs, model_version, timestamp, request_id."""
    names = [n for n in features.names if n in frame.columns]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    inputs = frame[names].astype(object).to_dict(orient="records")
    labels = frame[target].tolist() if include_labels and target in frame.columns else None
    records = []
    for i, row in enumerate(inputs):
        record: dict = {
            "request_id": f"sim-{seed}-{i:08d}",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "model_version": model_version,
            "inputs": {k: _json_value(v) for k, v in row.items()},
        }
        if probabilities is not None:
            p = float(probabilities[i])
            record["outputs"] = {"probability": p, "decision": "positive" if p >= threshold else "negative"}
        if labels is not None:
            record[target] = _json_value(labels[i])
        records.append(record)
    return records


def write_batch(
    simulation: Simulation,
    output: Path,
    settings: Settings,
    features: FeatureSet,
    model_path: Path | None = None,
    include_labels: bool = True,
    seed: int = 0,
) -> None:
    """CSV, Parquet, or JSON Lines in the prediction-log shape (scored when a model is available)."""
    frame = simulation.frame
    name = output.name.lower()
    target = settings.data.target
    if name.endswith((".jsonl", ".ndjson", ".json")):
        probabilities = None
        version = "simulated"
        if model_path is not None:
            from german_credit_scoring.monitoring.drift import load_model, score

            model = load_model(model_path)
            probabilities = score(model, frame, features, settings.data.positive_label)
            version = f"simulated:{model_path}"
        records = to_log_records(
            frame, features, target, probabilities, settings.decision_threshold, include_labels, version, seed
        )
        io.write_text(output, "".join(json.dumps(r, default=str) + "\n" for r in records))
        return
    if not include_labels and target in frame.columns:
        frame = frame.drop(columns=[target])
    if name.endswith(".csv"):
        io.write_with(output, lambda p: frame.to_csv(p, index=False))
    elif name.endswith((".parquet", ".pq")):
        io.write_with(output, lambda p: frame.to_parquet(p, index=False))
    else:
        raise SettingsError(f"{output}: write .csv, .parquet or .jsonl")


def simulate_cli(argv: list[str]) -> int:
    """``mlops simulate-drift``: write one simulated current batch."""
    from german_credit_scoring.data import read_table
    from german_credit_scoring.monitoring.drift import find_model
    from german_credit_scoring.stage import EXIT_BAD_INPUT, EXIT_OK, configure_logging

    parser = argparse.ArgumentParser(prog="mlops simulate-drift", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="none")
    parser.add_argument(
        "--input", type=Path, default=paths.TEST, help="rows to resample (default: test split)"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help=".csv, .parquet or .jsonl (prediction-log shape)"
    )
    parser.add_argument("--rows", type=int, help="rows to write (default: as many as the input)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", help="comma-separated columns to act on (default: chosen per kind)")
    parser.add_argument(
        "--magnitude", type=float, help="shift size in std / share of rows / new positive rate"
    )
    parser.add_argument(
        "--model", type=Path, help="model that scores the JSONL output (default: approved/candidate)"
    )
    parser.add_argument("--no-model", action="store_true", help="write logs without outputs.probability")
    parser.add_argument("--no-labels", action="store_true", help="leave the target column out")
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.params)
        features = load_features(settings.features)
        frame = read_table(args.input)
        columns = [c.strip() for c in args.features.split(",") if c.strip()] if args.features else None
        simulation = simulate(
            frame,
            args.kind,
            features,
            settings.data.target,
            settings.data.positive_label,
            rows=args.rows,
            seed=args.seed,
            columns=columns,
            magnitude=args.magnitude,
        )
        model_path = None if args.no_model else find_model(args.model)
        write_batch(simulation, args.output, settings, features, model_path, not args.no_labels, args.seed)
    except ProjectError as error:
        log.error("simulate-drift cannot run: %s", error)
        return EXIT_BAD_INPUT
    touched = ", ".join(simulation.touched) or "nothing"
    print(
        f"wrote {len(simulation.frame):,} rows to {args.output}: {simulation.description} (touched: {touched})"
    )
    return EXIT_OK
