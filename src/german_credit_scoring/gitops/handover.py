"""The hand-over from a reviewed pull request to main: main ships what was reviewed, and never retrains.

The pull request's ``package`` job packs a **release** (`pack`): the bento and its model exactly as the
stage built them (a BentoML store holding just those two), and `Release`, a typed record of where they
come from: model digest, the ``dvc.lock`` hashes, pull request, commit and run. It is uploaded as the
run's ``release`` artifact (``overwrite: true``, so "Re-run failed jobs" works).

On a push to main, `fetch` finds the pull request merged into that commit, its newest successful
``pr.yml`` run for the reviewed head commit, downloads that run's ``release`` artifact through the REST
API and `verify`-ies it against main's own ``dvc.lock``: the model inside the bento must hash (as DVC
hashes) to main's ``models/approved`` entry, byte for byte. Anything else fails the job with a message
that says what to do; main never falls back to training. `labels` gives the image its OCI labels.
"""

from __future__ import annotations

import argparse
import hashlib
import io as _io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from german_credit_scoring.gitops import lock

RELEASE_FILE = "release.json"
STORE = "bentoml"  # a BENTOML_HOME with just the released bento and its model
ARTIFACT = "release"
APPROVED = "models/approved"
LABEL_PREFIX = "io.github.mlops"


class HandoverError(Exception):
    """The reviewed release cannot be found or does not match main's dvc.lock."""


class Release(BaseModel):
    """What a reviewed pull request hands to main. Written by `pack`, read by `verify` and `labels`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str
    bento: str  # name:version
    model: str  # BentoML model tag
    model_version: str
    model_sha256: str  # of model.joblib
    approved_md5: str  # DVC's hash of models/approved (dvc.lock)
    lock_sha256: str  # of the dvc.lock the pull request reviewed
    lock_outs: dict[str, str]  # every output's hash in that dvc.lock, path -> md5
    repository: str | None = None
    pull_request: int | None = None
    head_sha: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lock_outs(stages: dict) -> dict[str, str]:
    return {path: md5 for stage in stages.values() for path, md5 in lock.outputs(stage).items()}


def pack(out: Path, record_path: Path = Path("models/bento.json"), lock_path: Path = lock.LOCK) -> Release:
    """Copy the packaged bento and model into ``out`` with their `Release` record."""
    from german_credit_scoring import io

    record = io.read_json(record_path)
    home = Path(record.get("bentoml_home") or ".bentoml")
    bento_name, bento_version = record["bento"].split(":", 1)
    model_name, model_version = record["model"].split(":", 1)
    stages = lock.load(lock_path.read_text(encoding="utf-8"), str(lock_path))
    outs = _lock_outs(stages)
    if APPROVED not in outs:
        raise HandoverError(f"{lock_path}: no {APPROVED} output; run the pipeline through the gate first")
    approved = Path(APPROVED)
    if lock.dvc_md5(approved) != outs[APPROVED]:
        raise HandoverError(f"{APPROVED} is not the model {lock_path} pins (dvc status / dvc checkout)")
    if out.exists():
        shutil.rmtree(out)
    for kind, name, version in (("bentos", bento_name, bento_version), ("models", model_name, model_version)):
        source = home / kind / name / version
        if not source.is_dir():
            raise HandoverError(f"{source}: not in the BentoML store (run the package stage)")
        shutil.copytree(source, out / STORE / kind / name / version)
    model_dir = out / STORE / "models" / model_name / model_version
    meta = io.read_json(approved / "model.json")
    release = Release(
        project=bento_name,
        bento=record["bento"],
        model=record["model"],
        model_version=str(meta["version"]),
        model_sha256=sha256(model_dir / "model.joblib"),
        approved_md5=outs[APPROVED],
        lock_sha256=sha256(lock_path),
        lock_outs=outs,
        repository=os.environ.get("GITHUB_REPOSITORY"),
        pull_request=_pull_request_number(),
        head_sha=_head_sha(),
        run_id=os.environ.get("GITHUB_RUN_ID"),
        run_attempt=os.environ.get("GITHUB_RUN_ATTEMPT"),
    )
    shutil.copy2(approved / "model.json", out / "model.json")
    io.write_text(out / RELEASE_FILE, release.model_dump_json(indent=2) + "\n")
    return release


def _event() -> dict:
    path = os.environ.get("GITHUB_EVENT_PATH")
    if path and Path(path).is_file():
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError:
            return {}
    return {}


def _pull_request_number() -> int | None:
    number = (_event().get("pull_request") or {}).get("number")
    return int(number) if number else None


def _head_sha() -> str | None:
    return ((_event().get("pull_request") or {}).get("head") or {}).get("sha") or os.environ.get("GITHUB_SHA")


def read(release_dir: Path) -> Release:
    path = release_dir / RELEASE_FILE
    if not path.is_file():
        raise HandoverError(f"{path}: no release record in the hand-over")
    return Release.model_validate_json(path.read_text(encoding="utf-8"))


def verify(release_dir: Path, lock_path: Path = lock.LOCK) -> Release:
    """The released model is, byte for byte, the one ``lock_path`` pins as models/approved."""
    release = read(release_dir)
    stages = lock.load(lock_path.read_text(encoding="utf-8"), str(lock_path))
    outs = _lock_outs(stages)
    expected = outs.get(APPROVED)
    if expected is None:
        raise HandoverError(f"{lock_path}: no {APPROVED} output")
    model_name, model_version = release.model.split(":", 1)
    model_dir = release_dir / STORE / "models" / model_name / model_version
    if not (model_dir / "model.joblib").is_file():
        raise HandoverError(f"{model_dir}: the released model is missing from the hand-over")
    with tempfile.TemporaryDirectory() as scratch:  # models/approved as DVC hashed it: model + model.json
        approved = Path(scratch) / "approved"
        approved.mkdir()
        shutil.copy2(model_dir / "model.joblib", approved / "model.joblib")
        shutil.copy2(release_dir / "model.json", approved / "model.json")
        actual = lock.dvc_md5(approved)
    problems = []
    if actual != expected:
        problems.append(
            f"the released model hashes to {actual}, but {lock_path} pins {APPROVED} at {expected}"
        )
    if sha256(model_dir / "model.joblib") != release.model_sha256:
        problems.append("the model file's sha256 is not the one recorded when the release was packed")
    changed = sorted(p for p, md5 in outs.items() if release.lock_outs.get(p, md5) != md5)
    if changed:
        problems.append(f"{lock_path} pins other outputs than the reviewed run: {', '.join(changed)}")
    if problems:
        raise HandoverError("; ".join(problems))
    return release


def oci_labels(release: Release, commit: str, repository_url: str | None) -> dict[str, str]:
    """The image's labels: the standard OCI ones (``source`` links the repository) and the lineage."""
    labels = {
        "org.opencontainers.image.title": release.project,
        "org.opencontainers.image.version": release.model_version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.ref.name": release.bento,
        f"{LABEL_PREFIX}.model.version": release.model_version,
        f"{LABEL_PREFIX}.model.digest": f"sha256:{release.model_sha256}",
        f"{LABEL_PREFIX}.model.dvc-md5": release.approved_md5,
        f"{LABEL_PREFIX}.bento": release.bento,
        f"{LABEL_PREFIX}.dvc-lock.sha256": release.lock_sha256,
        f"{LABEL_PREFIX}.dvc-lock.outs": json.dumps(release.lock_outs, sort_keys=True, separators=(",", ":")),
    }
    if repository_url:
        labels["org.opencontainers.image.source"] = repository_url
        labels["org.opencontainers.image.url"] = repository_url
    if release.pull_request is not None:
        labels[f"{LABEL_PREFIX}.pull-request"] = str(release.pull_request)
    if release.head_sha:
        labels[f"{LABEL_PREFIX}.reviewed-commit"] = release.head_sha
    if release.run_id:
        labels[f"{LABEL_PREFIX}.reviewed-run"] = release.run_id
    return labels


# --- finding the reviewed run on GitHub ---------------------------------------------------------------


def newest_artifact(
    client, workflow: str, filters: dict, name: str, status: str | None = "success"
) -> tuple[dict, dict] | None:
    """(run, artifact): the newest run of ``workflow`` matching ``filters`` (and ``status``, unless None)
    that holds an unexpired artifact ``name``."""
    params = {**filters, "per_page": 20, **({"status": status} if status else {})}
    runs = client.request("GET", client.repo_path(f"actions/workflows/{workflow}/runs"), params=params)
    candidates = sorted(
        (runs or {}).get("workflow_runs", []),
        key=lambda r: (str(r.get("updated_at", "")), r["id"]),
        reverse=True,
    )
    for run in candidates:
        listed = client.request(
            "GET", client.repo_path(f"actions/runs/{run['id']}/artifacts"), params={"name": name}
        )
        for artifact in (listed or {}).get("artifacts", []):
            if artifact.get("name") == name and not artifact.get("expired"):
                return run, artifact
    return None


def extract(data: bytes, out: Path) -> None:
    """An artifact's zip into a fresh ``out``, refusing any member that would land outside it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if not str((out / member).resolve()).startswith(str(out.resolve())):
                    raise HandoverError(f"unsafe path {member!r} in the artifact")
            archive.extractall(out)
    except zipfile.BadZipFile as error:
        raise HandoverError(f"not a zip ({error})") from None


def find_release_artifact(client, commit: str, workflow: str = "pr.yml") -> tuple[dict, dict, dict]:
    """(pull request, run, artifact) of the reviewed release that ``commit`` on main merged."""
    pulls = list(client.request("GET", client.repo_path(f"commits/{commit}/pulls")) or [])
    merged = [p for p in pulls if p.get("merged_at") or p.get("merge_commit_sha") == commit]
    if not merged:
        raise HandoverError(
            f"commit {commit[:12]} was not merged from a pull request: main ships only reviewed releases "
            "(push changes through a pull request)"
        )
    pull = merged[0]
    head = pull["head"]["sha"]
    found = newest_artifact(client, workflow, {"head_sha": head}, ARTIFACT)
    if found:
        run, artifact = found
        return pull, run, artifact
    raise HandoverError(
        f"pull request #{pull['number']} (head {head[:12]}) has no successful {workflow} run with a "
        f"'{ARTIFACT}' artifact (expired, or the checks did not pass): re-run its checks, then re-run this job"
    )


def fetch(client, commit: str, out: Path, workflow: str = "pr.yml") -> Release:
    pull, run, artifact = find_release_artifact(client, commit, workflow)
    data = client.download(client.repo_path(f"actions/artifacts/{artifact['id']}/zip"))
    try:
        extract(data, out)
    except HandoverError as error:
        raise HandoverError(f"artifact {artifact['id']} of run {run['id']}: {error}") from None
    release = read(out)
    print(
        f"reviewed release: PR #{pull['number']}, run {run['id']}, bento {release.bento}, "
        f"model {release.model_version}"
    )
    return release


SHIPPED = "reviewed-release"  # main.yml's artifact: the release it verified and built the image from


def production_model(client, out: Path, branch: str = "main", workflow: str = "main.yml") -> str | None:
    """Production's model: the release the newest successful ``main.yml`` run on ``branch`` shipped.

    Written to ``out`` as a model directory (model.joblib, model.json). Returns None when it is there,
    else the reason it is not (nothing shipped yet, expired, no API access): the comparison then says
    so plainly, and nothing fails.
    """
    try:
        found = newest_artifact(client, workflow, {"branch": branch}, SHIPPED)
        if not found:
            return f"no successful {workflow} run on {branch} has shipped a release yet"
        data = client.download(client.repo_path(f"actions/artifacts/{found[1]['id']}/zip"))
    except Exception as error:  # the API: forks without actions: read, no token, unreachable
        return f"production's release could not be fetched ({error})"
    scratch = out.parent / f".{out.name}-release"
    try:
        extract(data, scratch)
        release = read(scratch)
    except HandoverError as error:
        return str(error)
    model_name, model_version = release.model.split(":", 1)
    stored = scratch / STORE / "models" / model_name / model_version
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(stored / "model.joblib", out / "model.joblib")
    shutil.copy2(scratch / "model.json", out / "model.json")
    shutil.rmtree(scratch, ignore_errors=True)
    return None


# --- command line -------------------------------------------------------------------------------------


def handover_cli(argv: list[str]) -> int:
    """`mlops handover pack|fetch|verify|labels`: the reviewed release, from pull request to image."""
    parser = argparse.ArgumentParser(prog="mlops handover", description=handover_cli.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack the packaged bento and model with their release record")
    p.add_argument("--out", type=Path, default=Path("release"))
    f = sub.add_parser("fetch", help="download the release the pull request merged into COMMIT reviewed")
    f.add_argument("--out", type=Path, default=Path("release"))
    f.add_argument("--commit", default=os.environ.get("GITHUB_SHA"))
    f.add_argument("--workflow", default="pr.yml")
    v = sub.add_parser("verify", help="check a release against dvc.lock (exit 1 on any difference)")
    v.add_argument("release", type=Path, nargs="?", default=Path("release"))
    v.add_argument("--lock", type=Path, default=lock.LOCK)
    pr = sub.add_parser("production", help="production's model (the release main shipped) into --out")
    pr.add_argument("--out", type=Path, default=Path("models/production"))
    pr.add_argument("--branch", default="main", help="production's branch (default main)")
    la = sub.add_parser("labels", help="the image's OCI labels")
    la.add_argument("release", type=Path, nargs="?", default=Path("release"))
    la.add_argument("--commit", default=os.environ.get("GITHUB_SHA", "unknown"))
    la.add_argument("--format", choices=["json", "opts"], default="json")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            release = pack(args.out)
            print(
                f"packed {release.bento} (model {release.model_version}, sha256 {release.model_sha256[:12]})"
            )
        elif args.command == "fetch":
            from german_credit_scoring.gitops.github import GitHub

            if not args.commit:
                raise HandoverError("no commit: pass --commit or set GITHUB_SHA")
            fetch(GitHub.from_env(), args.commit, args.out, args.workflow)
            release = verify(args.out)
            print(f"verified: the model is byte for byte the one dvc.lock pins ({release.approved_md5})")
        elif args.command == "production":
            from german_credit_scoring.gitops.github import GitHub

            reason = production_model(GitHub.from_env(), args.out, args.branch)
            if reason:
                print(f"no production model to compare with: {reason}")
            else:
                print(f"production's model (the release main shipped) is in {args.out}")
            return 0
        elif args.command == "verify":
            release = verify(args.release, args.lock)
            print(f"verified: the model is byte for byte the one {args.lock} pins ({release.approved_md5})")
        else:
            server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
            repository = os.environ.get("GITHUB_REPOSITORY")
            release = read(args.release)
            labels = oci_labels(release, args.commit, f"{server}/{repository}" if repository else None)
            if args.format == "json":
                print(json.dumps(labels, indent=2, sort_keys=True))
            else:  # one `--opt label=K=V` per line, for bentoml containerize
                for key, value in sorted(labels.items()):
                    print(f"label={key}={value}")
    except HandoverError as error:
        print(f"mlops handover {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # API and file errors: one clear line
        from german_credit_scoring.gitops.github import ConfigurationError, GitHubError

        if isinstance(error, GitHubError | ConfigurationError | OSError | KeyError | ValueError):
            print(f"mlops handover {args.command}: {error}", file=sys.stderr)
            return 2
        raise
    return 0
