"""The training data as a versioned dataset: the git-tracked base file plus DVC-tracked appended parts.

``data.path`` (the bundled sample, in git: a fresh clone without a DVC remote still runs) is version
0. ``mlops dataset append`` adds newly labelled rows (by default the matured production predictions
joined with their outcomes from the store, or ``--from FILE``) as one Parquet part
``data/appended/part-<sha256>.parquet``, tracked by DVC (``dvc add``: its ``.dvc`` pointer is
committed, the content goes to the DVC remote), and adds the part to ``data.appended`` in
params.yaml: that list is the dataset version the ingest stage reads (a params dependency, so
``dvc repro`` retrains on it). A part's name is its content hash and is checked when read.

New rows are validated by the same contract (every feature and the target present, types, allowed
values and ranges, declared classes: bad input names the column) and deduplicated by
``data.entity_key`` (or by the whole row when the data has no key) against the dataset and within the
batch; every offered row is counted in the typed ``AppendResult``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from german_credit_scoring import io, paths
from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.errors import DataError, SettingsError
from german_credit_scoring.settings import Settings

PART_DIR = Path("data/appended")
_PART = re.compile(r"^part-([0-9a-f]{16})\.parquet$")
_APPENDED_LINE = re.compile(r"^(  appended:[ \t]*)(\[[^\]\n]*\])(.*)$", re.MULTILINE)


class AppendResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    offered: int
    added: int
    duplicates_in_dataset: int
    duplicates_in_batch: int
    part: str | None
    version: list[str]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_part(path: Path) -> pd.DataFrame:
    match = _PART.match(Path(path).name)
    if not Path(path).is_file():
        raise DataError(
            f"{path}: appended part not found (run `dvc pull {path}` to fetch it from the remote)"
        )
    if match is None or not _sha(Path(path)).startswith(match.group(1)):
        raise DataError(f"{path}: its content does not match the hash in its name (altered after append?)")
    return pd.read_parquet(path)


def read_dataset(settings: Settings) -> pd.DataFrame:
    """The base file and every appended part, in order: the current dataset version."""
    from german_credit_scoring.data import read_table

    frames = [read_table(settings.data.path, settings.data.format)]
    frames += [read_part(part) for part in settings.data.appended]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _row_keys(frame: pd.DataFrame, columns: list[str], numeric: set[str]) -> pd.Series:
    """One hash per row, the same for equal values however they were read: a number as a float (a
    file's 2372.0 and the contract's int 2372 agree), any missing value (NaN, None, NA) as None."""
    parts = {}
    for name in columns:
        column = frame[name]
        if name in numeric:
            column = pd.to_numeric(column, errors="coerce").astype("float64")
        parts[name] = column.astype(object).where(column.notna(), None).astype(str)
    return pd.util.hash_pandas_object(pd.DataFrame(parts, index=frame.index), index=False)


def validate_rows(
    frame: pd.DataFrame, settings: Settings, features: FeatureSet, classes: list[str]
) -> pd.DataFrame:
    """The rows typed by the contract; any violation is bad input naming the column and examples."""
    from german_credit_scoring.data import cast_to_contract

    target = settings.data.target
    wanted = [*features.names, target]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"new rows lack the contract's columns {missing} (they have {list(frame.columns)[:20]})"
        )
    typed, problems = cast_to_contract(
        frame[wanted + [c for c in frame.columns if c not in wanted]], features, target
    )
    if problems:
        raise DataError("new rows do not match the contract: " + "; ".join(problems))
    errors = []
    for feature in features.features:
        column = typed[feature.name]
        if not feature.nullable and column.isna().any():
            errors.append(f"{feature.name}: {int(column.isna().sum())} missing values (not nullable)")
        present = column.dropna()
        if feature.allowed_values is not None:
            bad = present[~present.astype(str).isin(feature.allowed_values)]
            if len(bad):
                errors.append(f"{feature.name}: values {bad.astype(str).unique()[:3].tolist()} not allowed")
        else:
            low = present < feature.min if feature.min is not None else pd.Series(False, index=present.index)
            high = present > feature.max if feature.max is not None else pd.Series(False, index=present.index)
            if (low | high).any():
                errors.append(
                    f"{feature.name}: values {present[low | high].unique()[:3].tolist()} outside "
                    f"[{feature.min}, {feature.max}]"
                )
    labels = typed[target]
    outside = labels[labels.isna() | ~labels.astype(str).isin(classes)]
    if len(outside):
        errors.append(
            f"{target}: labels {outside.astype(str).unique()[:3].tolist()} not in the classes {classes}"
        )
    if errors:
        raise DataError("new rows do not match the contract: " + "; ".join(errors))
    return typed


def set_appended(params_path: Path, parts: list[str]) -> None:
    """Point params.yaml's ``data.appended`` at ``parts`` (one flow list line; comments kept)."""
    text = params_path.read_text(encoding="utf-8")
    if len(_APPENDED_LINE.findall(text)) != 1:
        raise SettingsError(f"{params_path}: expected one line `  appended: [...]` under data:")
    flow = "[" + ", ".join(parts) + "]"
    io.write_text(params_path, _APPENDED_LINE.sub(lambda m: m.group(1) + flow + m.group(3), text, count=1))


def append(
    new_rows: pd.DataFrame,
    settings: Settings,
    features: FeatureSet,
    classes: list[str],
    params_path: Path = paths.PARAMS,
    part_dir: Path = PART_DIR,
    dvc: bool = True,
) -> AppendResult:
    """Validate, deduplicate and add ``new_rows`` as the next dataset version."""
    if new_rows.empty:  # no newly labelled rows: the version stays
        version = [str(p) for p in settings.data.appended]
        return AppendResult(
            offered=0, added=0, duplicates_in_dataset=0, duplicates_in_batch=0, part=None, version=version
        )
    typed = validate_rows(new_rows, settings, features, classes)
    columns = [*features.names, settings.data.target]
    current = read_dataset(settings)
    key = settings.data.entity_key
    if key is not None:
        if key not in typed.columns:
            raise DataError(f"new rows lack the entity key column {key!r}")
        columns = [key, *columns]
        new_keys, old_keys = typed[key].astype(str), set(current[key].astype(str))
    else:  # no key: a row is a duplicate when every contract column and the label are equal
        numeric = {f.name for f in features.features if f.is_numeric}
        new_keys = _row_keys(typed, columns, numeric)
        old_keys = set(_row_keys(current, columns, numeric))
    in_dataset = new_keys.isin(old_keys)
    in_batch = new_keys.duplicated(keep="last") & ~in_dataset
    keep = typed[~in_dataset & ~in_batch]
    extra = [c for c in current.columns if c not in columns and c in keep.columns]
    keep = keep[[*columns, *extra]].reset_index(drop=True)
    version = [str(p) for p in settings.data.appended]
    part = None
    if len(keep):
        part_dir.mkdir(parents=True, exist_ok=True)
        staging = part_dir / ".new-part.parquet"
        keep.to_parquet(staging, index=False)
        final = part_dir / f"part-{_sha(staging)[:16]}.parquet"
        staging.replace(final)
        part = str(final)
        if dvc:
            done = subprocess.run(["dvc", "add", "-q", part], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DataError(f"dvc add {part} failed: {done.stderr.strip() or done.stdout.strip()}")
        version = [*version, part]
        set_appended(params_path, version)
    return AppendResult(
        offered=len(new_rows),
        added=len(keep),
        duplicates_in_dataset=int(in_dataset.sum()),
        duplicates_in_batch=int(in_batch.sum()),
        part=part,
        version=version,
    )


def labelled_production_rows(settings: Settings, store, now: datetime | None = None) -> pd.DataFrame:
    """Matured production predictions joined with their outcomes: inputs, protected attributes, label."""
    from collections import Counter
    from datetime import timedelta

    from german_credit_scoring.monitoring.labels import join, stored_outcomes
    from german_credit_scoring.monitoring.store import read_window

    now = now or datetime.now(UTC)
    since = now.date() - timedelta(days=settings.monitoring.store.retention_days)
    predictions = read_window(store, since, now.date()).rows
    joined = join(predictions, stored_outcomes(store), settings, now, Counter())
    time_column = settings.split.time_column
    rows = []
    for r in joined:
        row = {k: v for k, v in r.items() if not k.startswith("__")}
        row[settings.data.target] = r["__label__"]
        if time_column and row.get(time_column) is None:  # out-of-time splits order rows by it
            row[time_column] = r["__timestamp__"]
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    return frame.drop(columns=[c for c in ("probability", "decision") if c in frame.columns])


def _has_remote() -> bool:
    done = subprocess.run(["dvc", "remote", "list"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and bool(done.stdout.strip())


def dataset_cli(argv: list[str]) -> int:
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.monitoring.commands import EXIT_OK, guarded
    from german_credit_scoring.monitoring.labels import declared_classes
    from german_credit_scoring.monitoring.store import Store
    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(prog="mlops dataset", description="the versioned training dataset")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("append", help="add newly labelled rows as a new dataset version")
    add.add_argument(
        "--from", dest="source", type=Path, help="a labelled file (default: the store's outcomes)"
    )
    add.add_argument("--store", help="store URL (default: monitoring.store.url)")
    add.add_argument("--params", type=Path, default=paths.PARAMS)
    add.add_argument("--no-dvc", action="store_true", help="write the part without `dvc add`")
    add.add_argument("--push", action="store_true", help="`dvc push` the new part to the DVC remote")
    add.add_argument(
        "--pointers-out",
        type=Path,
        help="write the files a pull request must commit for the new version (empty: no new version)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from german_credit_scoring.data import read_table

        settings = load_settings(args.params)
        features = load_features(settings.features)
        if args.source is not None:
            rows = read_table(args.source)
        else:
            rows = labelled_production_rows(settings, Store(args.store or settings.monitoring.store.url))
        result = append(
            rows, settings, features, declared_classes(settings), args.params, dvc=not args.no_dvc
        )
        pointers = [str(args.params), f"{result.part}.dvc"] if result.part and not args.no_dvc else []
        if result.part and args.push and not _has_remote():
            # nobody else could fetch the part: the new version stays local, no pointer is handed on
            print(f"dataset append: no DVC remote configured; {result.part} was not pushed or handed on")
            pointers = []
        elif result.part and args.push:
            done = subprocess.run(
                ["dvc", "push", "-q", result.part], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise DataError(
                    f"dvc push {result.part} failed: {done.stderr.strip() or done.stdout.strip()}"
                )
        if args.pointers_out is not None:
            io.write_text(args.pointers_out, "".join(f"{p}\n" for p in pointers))
        print(
            f"dataset append: {result.offered} rows offered, {result.added} added, "
            f"{result.duplicates_in_dataset} already in the dataset, {result.duplicates_in_batch} repeated; "
            f"version {result.version or ['base']}"
        )
        return EXIT_OK

    return guarded("dataset", body)
