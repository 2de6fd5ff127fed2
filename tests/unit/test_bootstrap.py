"""bootstrap.py keeps Python's bytecode cache on for what it runs, out of the source tree."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap_under_test", ROOT / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("given", "expected_prefix"),
    [
        ({"PYTHONDONTWRITEBYTECODE": "1"}, "venv"),  # the CI image's setting: cache kept, in .venv
        ({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/elsewhere"}, "/elsewhere"),
        ({}, None),  # nothing set: Python's own default (__pycache__ beside the sources)
        ({"PYTHONDONTWRITEBYTECODE": ""}, None),  # empty is unset, for Python too
    ],
)
def test_commands_keep_the_bytecode_cache_out_of_the_sources(given, expected_prefix):
    bootstrap = _bootstrap()
    # given a shell's environment; when bootstrap.py builds its commands' environment
    env = bootstrap.command_env({"PATH": "/usr/bin", **given}, "/opt/uv/bin/uv")
    # then Python may write its cache, to .venv/pycache where the shell had said not to write one
    assert "PYTHONDONTWRITEBYTECODE" not in env
    if expected_prefix == "venv":
        assert env["PYTHONPYCACHEPREFIX"] == str(bootstrap.PYCACHE) == str(ROOT / ".venv" / "pycache")
    else:
        assert env.get("PYTHONPYCACHEPREFIX") == expected_prefix
    assert env["PATH"].split(os.pathsep)[0] == "/opt/uv/bin" and env["UV_PYTHON_DOWNLOADS"] == "never"


def test_a_module_imported_under_that_environment_is_compiled_once_into_the_prefix(tmp_path):
    # given a module in a source folder and a shell that says not to write bytecode
    bootstrap = _bootstrap()
    source = tmp_path / "src"
    source.mkdir()
    (source / "probe_module.py").write_text("VALUE = 42\n")
    prefix = tmp_path / "cache"
    env = bootstrap.command_env(
        {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(prefix)}, "uv"
    )
    env["PYTHONPATH"] = str(source)
    # when a process under bootstrap.py's environment imports it
    done = subprocess.run(
        [sys.executable, "-c", "import probe_module; print(probe_module.VALUE)"],
        env=env,
        capture_output=True,
        text=True,
    )
    # then the compiled module is in the prefix (the next process reads it) and not beside the source
    assert done.returncode == 0 and done.stdout.strip() == "42", done.stderr
    assert list(prefix.rglob("probe_module*.pyc")), sorted(prefix.rglob("*"))
    assert not (source / "__pycache__").exists()


def test_cached_copies_of_temporary_modules_are_forgotten_and_the_rest_kept(tmp_path):
    # given a cache holding a module of the project and one of a test's temporary project copy
    bootstrap = _bootstrap()
    prefix = tmp_path / "pycache"
    temporary = Path(tempfile.gettempdir()).resolve()
    kept = prefix / Path("/opt/project/src").relative_to("/") / "module.cpython-311.pyc"
    copied = prefix / temporary.relative_to(temporary.anchor) / "pytest-7" / "copy" / "m.cpython-311.pyc"
    for path in (kept, copied):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"pyc")
    # when bootstrap.py tidies it before a run
    bootstrap.forget_temporary_bytecode(prefix)
    # then the temporary copy's entry is gone and the project's stays
    assert kept.exists() and not copied.exists()
