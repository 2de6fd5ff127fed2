"""Lineage manifest, signing and verification of a model version.

* ``mlops lineage`` writes the manifest (``models/lineage.json``): commit, the ``dvc.lock`` hashes of
  every stage's inputs and outputs, the ``params.yaml`` values, the MLflow run id (from the train
  stage's run record), the SHA-256 of every file in the model directory, the bento tag and, once main
  pushed it, the image digest. It is a release record, not a DVC output (it names a commit and a run).
* ``mlops sign`` signs the model directory and the manifest with the OpenSSF ``model-signing``
  package: an elliptic-curve key pair offline and in tests (``--private-key``), keyless Sigstore in
  GitHub Actions (``--sigstore``, the workflow's OIDC identity).
* ``mlops verify`` checks both signatures and every digest in the manifest against the files and
  names every file whose bytes changed (with its expected and actual digest and size).
* The service calls :func:`require_verified` before it loads a model: a model whose files do not match
  its manifest (or, when a key or identity is configured, its signature) is refused, unless
  ``SCORING_ALLOW_UNVERIFIED=true`` is set explicitly.

Only the standard library and PyYAML are imported at module level: the service imports this module,
and ``model_signing`` is loaded only when a signature is checked or made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_FILE = Path("models/lineage.json")
MODEL_DIR = Path("models/approved")
SIGNATURE_SUFFIX = ".sig"
SERVING_MANIFEST = "lineage.json"  # inside the BentoML model directory
SIGNATURE_DIR = "signature"  # inside the BentoML model directory: the signatures and the full manifest
ALLOW_UNVERIFIED_ENV = "SCORING_ALLOW_UNVERIFIED"
PUBLIC_KEY_ENV = "SCORING_SIGNING_PUBLIC_KEY"
IDENTITY_ENV = "SCORING_SIGNING_IDENTITY"
ISSUER_ENV = "SCORING_SIGNING_ISSUER"
CHUNK = 1 << 20


class VerificationError(Exception):
    """The model does not verify: the message lists every problem."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def file_digests(directory: Path | str, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256": ..., "size": ...}}`` for every file below ``directory``."""
    directory = Path(directory)
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(skip):
            continue
        out[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return out


def dvc_lock_hashes(lock: Path | str = "dvc.lock") -> dict[str, dict[str, str]]:
    """``{stage: {path: md5}}`` for every dependency and output pinned in dvc.lock."""
    import yaml

    lock = Path(lock)
    if not lock.is_file():
        return {}
    raw = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, str]] = {}
    for stage, body in sorted((raw.get("stages") or {}).items()):
        entries = [*(body.get("deps") or []), *(body.get("outs") or [])]
        out[stage] = {
            str(e["path"]): str(e.get("md5") or e.get("hash") or "") for e in entries if "path" in e
        }
    return out


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def build_manifest(
    model_dir: Path | str = MODEL_DIR,
    params: Path | str = "params.yaml",
    lock: Path | str = "dvc.lock",
    bento_record: Path | str = "models/bento.json",
    image_digest: str | None = None,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    import yaml

    model_dir = Path(model_dir)
    meta_path = model_dir / "model.json"
    if not (model_dir / "model.joblib").is_file():
        raise VerificationError(f"{model_dir / 'model.joblib'}: no model to describe (run `dvc repro gate`)")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if mlflow_run_id is None:
        from german_credit_scoring import runs

        record = runs.read("train")
        if record and record.facts.get("model_version") == meta.get("version"):
            mlflow_run_id = (record.facts.get("mlflow") or {}).get("run_id")
    bento = json.loads(Path(bento_record).read_text(encoding="utf-8")) if Path(bento_record).is_file() else {}
    if not bento.get("bento") and meta.get("version"):  # the bento's version is the model's (packaging)
        from german_credit_scoring.lifecycle.packaging import tag_version

        slug = (yaml.safe_load(Path(params).read_text(encoding="utf-8")) or {}).get("project", {}).get("slug")
        bento = {"bento": f"{slug}:{tag_version(str(meta['version']))}"} if slug else {}
    files = file_digests(model_dir)
    return {
        "schema": 1,
        "model_version": meta.get("version"),
        "model_dir": model_dir.as_posix(),
        "model_digest": files["model.joblib"]["sha256"],
        "files": files,
        "commit": _git("rev-parse", "HEAD"),
        "dvc_lock": dvc_lock_hashes(lock),
        "params": yaml.safe_load(Path(params).read_text(encoding="utf-8")) if Path(params).is_file() else {},
        "mlflow_run_id": mlflow_run_id,
        "bento": bento.get("bento"),
        "image_digest": image_digest,
    }


def compare_files(expected: dict[str, dict[str, Any]], directory: Path, where: str) -> list[str]:
    """Every file whose bytes differ from the manifest (or that is missing), named with both digests."""
    problems = []
    for rel, want in sorted(expected.items()):
        path = directory / rel
        if not path.is_file():
            problems.append(f"{where}/{rel}: missing (expected {want['sha256']})")
            continue
        size = path.stat().st_size
        actual = sha256_file(path)
        if actual != want["sha256"]:
            change = f"size {want.get('size')} -> {size}" if size != want.get("size") else f"same size {size}"
            problems.append(
                f"{where}/{rel}: bytes changed ({change}); expected {want['sha256']}, found {actual}"
            )
    return problems


# --- signatures (model_signing) ------------------------------------------------------------------------


def signature_path(target: Path) -> Path:
    return target.with_name(target.name + SIGNATURE_SUFFIX)


def sign(target: Path, private_key: Path | None = None, sigstore: bool = False) -> Path:
    """Sign a model directory or a file; the signature goes beside it as ``<name>.sig``."""
    from model_signing import signing

    config = signing.Config()
    if private_key is not None:
        config = config.use_elliptic_key_signer(private_key=private_key)
    elif sigstore:
        config = config.use_sigstore_signer(use_ambient_credentials=True)
    else:
        raise VerificationError(
            "choose --private-key PEM (offline) or --sigstore (keyless, in GitHub Actions)"
        )
    out = signature_path(Path(target))
    config.sign(Path(target), out)
    return out


def verify_signature(
    target: Path,
    signature: Path,
    public_key: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    ignore_unsigned: bool = False,
) -> list[str]:
    """Problems with ``signature`` over ``target`` (empty: it verifies)."""
    from model_signing import verifying

    if not signature.is_file():
        return [f"{signature}: signature not found"]
    config = verifying.Config()
    if public_key is not None:
        config = config.use_elliptic_key_verifier(public_key=public_key)
    elif identity and issuer:
        config = config.use_sigstore_verifier(identity=identity, oidc_issuer=issuer)
    else:
        return ["no verification key or Sigstore identity configured"]
    if ignore_unsigned:
        config = config.set_ignore_unsigned_files(True)
    try:
        config.verify(Path(target), signature)
    except Exception as error:  # model_signing raises ValueError and crypto errors alike
        return [f"{target}: signature {signature} does not verify: {error}"]
    return []


def verify(
    manifest_path: Path = MANIFEST_FILE,
    model_dir: Path | None = None,
    public_key: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
) -> list[str]:
    """Everything wrong with a released model: manifest signature, model signature, every file digest."""
    if not manifest_path.is_file():
        return [f"{manifest_path}: manifest not found (run `mlops lineage`)"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    model_dir = Path(model_dir or manifest.get("model_dir") or MODEL_DIR)
    problems = []
    if public_key is not None or (identity and issuer):
        problems += verify_signature(
            manifest_path, signature_path(manifest_path), public_key, identity, issuer
        )
        problems += verify_signature(model_dir, signature_path(model_dir), public_key, identity, issuer)
    problems += compare_files(manifest.get("files") or {}, model_dir, model_dir.as_posix())
    extra = set(file_digests(model_dir)) - set(manifest.get("files") or {})
    problems += [
        f"{model_dir.as_posix()}/{rel}: not in the manifest (added after release)" for rel in sorted(extra)
    ]
    return problems


# --- the service: refuse a model that does not verify ----------------------------------------------


def serving_manifest(model_files: dict[str, Path]) -> dict[str, Any]:
    """The manifest packaging writes into the BentoML model: the digests of the files it copied."""
    return {
        "schema": 1,
        "files": {
            name: {"sha256": sha256_file(path), "size": path.stat().st_size}
            for name, path in sorted(model_files.items())
        },
    }


def package_lineage(model_dir: Path | str, stored: Path, manifest: Path = MANIFEST_FILE) -> None:
    """Write the serving manifest into a stored model and copy the release's signed manifest, if any.

    ``stored`` already holds the copied model files. When ``mlops lineage``/``mlops sign`` ran for this
    model (main's release job), the manifest and both signatures travel with it under ``signature/``.
    """
    import shutil

    stored = Path(stored)
    files = {p.relative_to(stored).as_posix(): p for p in stored.rglob("*") if p.is_file()}
    (stored / SERVING_MANIFEST).write_text(
        json.dumps(serving_manifest(files), indent=2) + "\n", encoding="utf-8"
    )
    model_dir = Path(model_dir)
    if (
        manifest.is_file()
        and json.loads(manifest.read_text(encoding="utf-8")).get("model_dir") == model_dir.as_posix()
    ):
        (stored / SIGNATURE_DIR).mkdir(exist_ok=True)
        for source in (manifest, signature_path(manifest), signature_path(model_dir)):
            if source.is_file():
                shutil.copy2(source, stored / SIGNATURE_DIR / source.name)


def require_verified(model_path: Path | str, environ: dict[str, str] | None = None) -> list[str]:
    """Refuse to serve a stored model whose files do not match the manifest packaged with it.

    With ``SCORING_SIGNING_PUBLIC_KEY`` (a PEM) or ``SCORING_SIGNING_IDENTITY`` + ``SCORING_SIGNING_ISSUER``
    (keyless Sigstore) set, the signatures packaged with the model must verify too. The only way
    around it is the explicit ``SCORING_ALLOW_UNVERIFIED=true``. Returns the problems it waived.
    """
    env = os.environ if environ is None else environ
    model_path = Path(model_path)
    problems = []
    manifest_file = model_path / SERVING_MANIFEST
    if not manifest_file.is_file():
        problems.append(f"{manifest_file}: no manifest packaged with the model")
    else:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        problems += compare_files(manifest.get("files") or {}, model_path, str(model_path))
    key = env.get(PUBLIC_KEY_ENV)
    identity, issuer = env.get(IDENTITY_ENV), env.get(ISSUER_ENV)
    if key or (identity and issuer):
        signed = model_path / SIGNATURE_DIR
        public_key = Path(key) if key else None
        problems += verify_signature(
            signed / "lineage.json", signed / "lineage.json.sig", public_key, identity, issuer
        )
        model_signatures = sorted(p for p in signed.glob("*.sig") if p.name != "lineage.json.sig")
        if not model_signatures:
            problems.append(f"{signed}: no model signature packaged with the model")
        for signature in model_signatures:
            problems += verify_signature(
                model_path, signature, public_key, identity, issuer, ignore_unsigned=True
            )
        full = signed / "lineage.json"
        if full.is_file():
            released = json.loads(full.read_text(encoding="utf-8")).get("files") or {}
            problems += compare_files({k: v for k, v in released.items() if k in {"model.joblib", "model.json"}},
                                      model_path, str(model_path))  # fmt: skip
    if not problems:
        log.info("model in %s verified", model_path)
        return []
    if str(env.get(ALLOW_UNVERIFIED_ENV, "")).lower() in {"1", "true", "yes"}:
        log.warning(
            "serving a model that does not verify (%s=true): %s", ALLOW_UNVERIFIED_ENV, "; ".join(problems)
        )
        return problems
    raise VerificationError(
        "refusing to serve a model that does not verify: "
        + "; ".join(problems)
        + f" (set {ALLOW_UNVERIFIED_ENV}=true to serve it anyway)"
    )


# --- CLIs ------------------------------------------------------------------------------------------------


def lineage_cli(argv: list[str]) -> int:
    """``mlops lineage``: write the lineage manifest of the approved model."""
    parser = argparse.ArgumentParser(prog="mlops lineage", description=lineage_cli.__doc__)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--output", type=Path, default=MANIFEST_FILE)
    parser.add_argument("--image-digest", help="registry/name@sha256:... once the image is pushed")
    args = parser.parse_args(argv)
    from german_credit_scoring.io import write_json

    try:
        manifest = build_manifest(args.model_dir, image_digest=args.image_digest)
    except VerificationError as error:
        print(f"mlops lineage: {error}", file=sys.stderr)
        return 2
    write_json(args.output, manifest)
    print(f"wrote {args.output}: model {manifest['model_version']} {manifest['model_digest']}")
    return 0


def sign_cli(argv: list[str]) -> int:
    """``mlops sign``: sign the model directory and its manifest (writes ``<name>.sig`` beside each)."""
    parser = argparse.ArgumentParser(prog="mlops sign", description=sign_cli.__doc__)
    parser.add_argument("--manifest", type=Path, default=MANIFEST_FILE)
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--private-key", type=Path, help="elliptic-curve private key (PEM): offline signing")
    way.add_argument(
        "--sigstore", action="store_true", help="keyless Sigstore with the workflow's OIDC token"
    )
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        print(f"mlops sign: {args.manifest} not found: run `mlops lineage` first", file=sys.stderr)
        return 2
    model_dir = Path(json.loads(args.manifest.read_text(encoding="utf-8"))["model_dir"])
    for target in (model_dir, args.manifest):
        print(f"signed {target} -> {sign(target, args.private_key, args.sigstore)}")
    return 0


def verify_cli(argv: list[str]) -> int:
    """``mlops verify``: signatures and manifest against the artefacts; exit 1 naming every changed file."""
    parser = argparse.ArgumentParser(prog="mlops verify", description=verify_cli.__doc__)
    parser.add_argument("--manifest", type=Path, default=MANIFEST_FILE)
    parser.add_argument("--model-dir", type=Path, help="default: the manifest's model_dir")
    parser.add_argument("--public-key", type=Path, help="elliptic-curve public key (PEM)")
    parser.add_argument("--identity", help="Sigstore: the signer's identity (workflow ref)")
    parser.add_argument("--issuer", default="https://token.actions.githubusercontent.com")
    parser.add_argument("--digests-only", action="store_true", help="no signature check (say so explicitly)")
    args = parser.parse_args(argv)
    if not args.digests_only and args.public_key is None and not args.identity:
        print("mlops verify: give --public-key or --identity (or --digests-only)", file=sys.stderr)
        return 2
    issuer = args.issuer if args.identity else None
    problems = verify(args.manifest, args.model_dir, args.public_key, args.identity, issuer)
    if problems:
        for problem in problems:
            print(f"FAIL {problem}", file=sys.stderr)
        return 1
    checked = "digests" if args.digests_only else "signatures and digests"
    print(f"{args.manifest}: {checked} verify")
    return 0
