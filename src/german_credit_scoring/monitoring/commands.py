"""`mlops ship-logs`, `prune-logs`, `drift-window`, `drift-check`: the monitoring loop's commands.

Exit codes: 0 ok, 1 the check ran and found drift (drift-check), 2 bad input or settings, 3 an
unexpected error (a crash is never mistaken for "drift found": Python's own exit code for an uncaught
exception is 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path

from german_credit_scoring import paths
from german_credit_scoring.errors import ProjectError
from german_credit_scoring.settings import Settings, load_settings

log = logging.getLogger("german_credit_scoring.monitoring")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_CRASH = 0, 1, 2, 3


def guarded(name: str, body: Callable[[], int]) -> int:
    """Run a command body: project errors are exit 2 with one line, anything else exit 3."""
    from german_credit_scoring.stage import configure_logging

    configure_logging()
    try:
        return body()
    except ProjectError as error:
        log.error("%s cannot run: %s", name, error)
        return EXIT_BAD_INPUT
    except Exception:  # a crash is a failed run, never "drift found"
        log.error("%s crashed:\n%s", name, traceback.format_exc())
        return EXIT_CRASH


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="settings file (params.yaml)")
    parser.add_argument("--store", help="store URL (default: monitoring.store.url)")
    return parser


def _store(settings: Settings, url: str | None):
    from german_credit_scoring.monitoring.store import Store

    return Store(url or settings.monitoring.store.url)


def ship_logs_cli(argv: list[str]) -> int:
    parser = _parser("mlops ship-logs", "move closed prediction-log partitions to the store; prune expired")
    parser.add_argument(
        "--source", type=Path, help="the service's log folder (default: serving.prediction_log)"
    )
    parser.add_argument(
        "--include-open", action="store_true", help="also ship today's partitions (rotates the open files)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from german_credit_scoring.monitoring.store import prune, ship

        settings = load_settings(args.params)
        store = _store(settings, args.store)
        source = args.source or Path(settings.serving.prediction_log)
        result = ship(source, store, include_open=args.include_open)
        pruned = prune(store, settings.monitoring.store.retention_days, source)
        print(
            f"ship-logs: {result.shipped_files} files ({result.shipped_bytes} bytes) of "
            f"{len(result.shipped_partitions)} partitions to {store.url}; "
            f"{len(result.open_partitions)} open partitions left; "
            f"pruned {len(pruned.deleted_store) + len(pruned.deleted_local)} partitions before {pruned.cutoff}"
        )
        for failure in result.failed:
            print(f"  not shipped (kept, retried next run): {failure}")
        return EXIT_BAD_INPUT if result.failed else EXIT_OK

    return guarded("ship-logs", body)


def prune_logs_cli(argv: list[str]) -> int:
    parser = _parser("mlops prune-logs", "delete store and local partitions older than retention_days")
    parser.add_argument(
        "--source", type=Path, help="the service's log folder (default: serving.prediction_log)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from german_credit_scoring.monitoring.store import prune

        settings = load_settings(args.params)
        source = args.source or Path(settings.serving.prediction_log)
        result = prune(_store(settings, args.store), settings.monitoring.store.retention_days, source)
        print(json.dumps(result.model_dump(), indent=2))
        return EXIT_OK

    return guarded("prune-logs", body)


def drift_window_cli(argv: list[str]) -> int:
    parser = _parser("mlops drift-window", "write the drift check's window (data/current/) from the store")
    parser.add_argument(
        "--mark-checked", action="store_true", help="record the current window as checked (since_last mode)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from german_credit_scoring.monitoring import window
        from german_credit_scoring.monitoring.lineage import load_lineage

        settings = load_settings(args.params)
        store = _store(settings, args.store)
        if args.mark_checked:
            manifest = window.load_manifest()
            if manifest is None:
                raise ProjectError(f"{window.WINDOW_MANIFEST}: no window to mark as checked")
            window.mark_checked(store, manifest)
            print(f"drift-window: marked {manifest.start}..{manifest.end} as checked in {store.url}")
            return EXIT_OK
        manifest = window.materialize(settings, store, load_lineage())
        print(
            f"drift-window: {manifest.rows} rows of model version {manifest.model_version} "
            f"({manifest.start}..{manifest.end}) from {manifest.files} files; reference {manifest.reference}; "
            f"{manifest.problem_count} unusable lines; other versions {manifest.other_versions}; "
            f"no lineage {manifest.unknown_versions}"
        )
        return EXIT_OK

    return guarded("drift-window", body)


def drift_check_cli(argv: list[str]) -> int:
    parser = _parser("mlops drift-check", "the drift check on the window (what the drift stage runs)")
    args = parser.parse_args(argv)

    def body() -> int:
        from german_credit_scoring.contract import load_features
        from german_credit_scoring.monitoring.window import run_check

        settings = load_settings(args.params)
        # a failing run writes nothing (the last good report stays) and exits 2 or 3, never 1
        result = run_check(settings, load_features(settings.features))
        print(f"drift: {result['verdict']}: {result['message']}")
        return EXIT_CHECK_FAILED if result["verdict"] == "drift" else EXIT_OK

    return guarded("drift-check", body)
