"""Errors a user can act on: each message names the file, field or column and what was expected."""


class ProjectError(Exception):
    """Base class: entry points print the message and exit non-zero, without a traceback."""


class SettingsError(ProjectError):
    """``params.yaml`` or another settings file is missing, malformed or inconsistent."""


class DataError(ProjectError):
    """A data file cannot be read or does not match its declared contract."""


class ContractError(ProjectError):
    """The feature definitions are inconsistent."""
