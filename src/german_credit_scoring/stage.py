"""Uniform behaviour for every entry point: logging set up, errors as one clear line, exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from german_credit_scoring.errors import ProjectError

log = logging.getLogger("german_credit_scoring")

EXIT_OK = 0
EXIT_FAILED_CHECK = 1  # the stage ran and its verdict is "fail" (validation, gate, drift)
EXIT_BAD_INPUT = 2  # the stage could not run: bad settings or data


class CheckFailed(ProjectError):
    """The stage wrote its results and the verdict is a failure (exit 1)."""


def configure_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def run(main: Callable[[], None], name: str) -> int:
    """Run a stage's main function and turn the project's errors into exit codes and messages."""
    import time

    from german_credit_scoring import runs

    configure_logging()
    runs.start(name)
    started = time.perf_counter()
    code = EXIT_OK
    try:
        main()
    except CheckFailed as failure:
        log.error("%s failed: %s", name, failure)
        code = EXIT_FAILED_CHECK
    except ProjectError as error:
        log.error("%s cannot run: %s", name, error)
        code = EXIT_BAD_INPUT
    finally:
        runs.record(name, finished_at=runs.now(), seconds=round(time.perf_counter() - started, 3))
    runs.record(name, exit_code=code)
    if code == EXIT_OK:
        log.info("%s done", name)
    return code


def entry(main: Callable[[], None], name: str) -> None:
    sys.exit(run(main, name))
