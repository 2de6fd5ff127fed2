"""The scoring service package; importable from the project root (``serving.service``)."""
