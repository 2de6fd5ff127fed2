"""``mlops score``: batch scoring of a data file with the approved model, each record with its reasons.

    uv run mlops score --input data/raw/new.csv --output scored.jsonl [--model models/approved] [--top-k 4]
                       [--hints]

Every row is checked against the service's input contract first (``serving_contract``: types, declared
categories, ranges, required fields); any problem stops the command with exit code 2 and names the
row and the column, before anything is written. Columns that are not features (an id, the target)
are passed through to the output untouched.

The output (``.jsonl``, ``.csv`` or ``.parquet``, by extension; written atomically) has one row per input
row, in order: the passed-through columns, ``probability``, ``decision``, ``reasons`` (feature, value,
signed contribution to the log-odds, phrase; JSON text in CSV and Parquet) and ``reasons_unavailable``
(why a row has no reasons; its decision stands). With ``--hints``, also ``hints`` (the closest changes of
one input within the contract that turn the decision, ``explain.counterfactual``; JSON text in CSV and
Parquet) and ``hints_unavailable``, for rows decided as ``serving.hints_for`` says (empty for the others).
Scoring and reasons are those of the service
(``Scorer.score_columns``), so a file scored here and the same records sent to ``/predict_batch`` agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

CHUNK = 10_000
MAX_PROBLEMS = 20


def score_file(
    input_path: Path,
    output_path: Path,
    model_dir: Path,
    settings,
    features,
    top_k: int,
    hints_top_k: int = 0,
) -> int:
    """Score ``input_path`` into ``output_path``; returns the number of rows. Raises DataError on bad input."""
    import pandas as pd
    from pydantic import TypeAdapter, ValidationError

    from german_credit_scoring import io
    from german_credit_scoring.data import read_table
    from german_credit_scoring.errors import DataError
    from german_credit_scoring.lifecycle.scoring import load_scorer
    from german_credit_scoring.lifecycle.serving_contract import (
        as_columns,
        build_record_model,
        describe_errors,
        field_attributes,
    )

    suffix = output_path.suffix.lower()
    if suffix not in {".jsonl", ".csv", ".parquet"}:
        raise DataError(f"{output_path}: unknown output format {suffix!r}; use .jsonl, .csv or .parquet")
    include = settings.data.use_protected_as_features
    scorer = load_scorer(model_dir, features, include)
    hinter = None
    if hints_top_k > 0:
        from german_credit_scoring.explain.counterfactual import Counterfactuals

        hinter = Counterfactuals(scorer, hints_top_k, settings.serving.hints_for)
    frame = whole_floats_as_ints(read_table(input_path), features)
    declared = [name for name in features.names if name in frame.columns]
    missing = [
        f.name for f in features.model_inputs(include) if f.name not in frame.columns and not f.nullable
    ]
    if missing:
        raise DataError(
            f"{input_path}: model input columns {missing} are missing (columns: {list(frame.columns)})"
        )
    record_model = build_record_model(features, include, name="Record")
    attributes = field_attributes(record_model)
    adapter = TypeAdapter(list[record_model])  # type: ignore[valid-type]
    passed = [name for name in frame.columns if name not in set(features.names)]
    outputs = []
    for start in range(0, len(frame), CHUNK):
        chunk = frame.iloc[start : start + CHUNK]
        payload = json.loads(chunk[declared].to_json(orient="records"))
        try:
            records = adapter.validate_python(payload)
        except ValidationError as error:
            problems = describe_errors(error)
            shown = [
                f"row {start + (p['record'] or 0) + 1}: column {p['field']!r}: {p['problem']}"
                for p in problems[:MAX_PROBLEMS]
            ]
            more = f"\n  ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
            raise DataError(
                f"{input_path}: {len(problems)} problems\n  " + "\n  ".join(shown) + more
            ) from None
        columns = as_columns(records, attributes, scorer.input_names)
        scores = scorer.score_columns(columns, top_k)
        part = chunk[passed].reset_index(drop=True).copy()
        part["probability"] = scores.probabilities
        part["decision"] = scores.decisions
        if scores.reasons is not None:
            part["reasons"] = scores.reasons
            part["reasons_unavailable"] = scores.unexplained
        if hinter is not None:
            found = hinter.hints(columns, scores.probabilities, scores.decisions)
            part["hints"] = [None if f is None else f.as_dicts() for f in found]
            part["hints_unavailable"] = [None if f is None else f.unavailable for f in found]
        outputs.append(part)
    result = pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame()
    if suffix == ".jsonl":
        plain = result.astype(object).where(result.notna(), None)  # NaN is not JSON
        lines = [json.dumps(row, default=_native) for row in plain.to_dict("records")]
        io.write_text(output_path, "".join(line + "\n" for line in lines))
        return len(result)
    for key in ("reasons", "hints"):
        if key in result:
            result[key] = [None if r is None else json.dumps(r) for r in result[key]]
    if suffix == ".csv":
        io.write_with(output_path, lambda tmp: result.to_csv(tmp, index=False))
    else:
        io.write_with(output_path, lambda tmp: result.to_parquet(tmp, index=False))
    return len(result)


def whole_floats_as_ints(frame, features):
    """Int features that a file holds as floats (``2372.0``, or whole numbers beside empty cells, as
    pandas reads them) become nullable ints, so the strict contract sees integers: the project's own
    data file scores as it trains. A column with any fractional or infinite value is left as read, and
    the contract refuses it."""
    import numpy as np

    for feature in features.features:
        if feature.dtype != "int" or feature.name not in frame.columns:
            continue
        column = frame[feature.name]
        if column.dtype.kind != "f":
            continue
        present = column.dropna().to_numpy()
        if np.isfinite(present).all() and (present == np.round(present)).all():
            frame[feature.name] = column.astype("Int64")
    return frame


def _native(value):
    """numpy scalars as Python values (full precision, unlike pandas' JSON writer)."""
    return value.item() if hasattr(value, "item") else str(value)


def score_cli(argv: Sequence[str] | None = None) -> int:
    """``mlops score``: exit 0 written, 2 bad input (the file, row and column are named)."""
    from german_credit_scoring import paths
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.errors import ProjectError
    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(prog="mlops score", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="CSV or Parquet file of records")
    parser.add_argument("--output", required=True, type=Path, help=".jsonl, .csv or .parquet")
    parser.add_argument(
        "--model", type=Path, default=paths.APPROVED_DIR, help="model directory (%(default)s)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--top-k", type=int, default=None, help="reasons per record (serving.reasons_top_k)")
    parser.add_argument(
        "--hints",
        action="store_true",
        help="add counterfactual hints (serving.hints_top_k of them, for decisions serving.hints_for names)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings = load_settings(args.params)
        features = load_features(settings.features)
        top_k = settings.serving.reasons_top_k if args.top_k is None else args.top_k
        if top_k < 0:
            raise ProjectError(f"--top-k must be 0 or more, got {top_k}")
        hints = settings.serving.hints_top_k if args.hints else 0
        if args.hints and hints == 0:
            raise ProjectError("--hints: serving.hints_top_k is 0 in the params file; set it to 1 or more")
        rows = score_file(args.input, args.output, args.model, settings, features, top_k, hints)
    except ProjectError as error:
        print(f"mlops score: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {rows} scored rows")
    return 0
