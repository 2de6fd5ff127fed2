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
    configure_logging()
    try:
        main()
    except CheckFailed as failure:
        log.error("%s failed: %s", name, failure)
        return EXIT_FAILED_CHECK
    except ProjectError as error:
        log.error("%s cannot run: %s", name, error)
        return EXIT_BAD_INPUT
    log.info("%s done", name)
    return EXIT_OK


def entry(main: Callable[[], None], name: str) -> None:
    sys.exit(run(main, name))
