"""Template machinery: turn a copy of this project into another team's project (never shipped in one).

The repository root is the working reference project; cookiecutter's ``{{cookiecutter.project_slug}}/``
folder holds only a placeholder. The pre-generation hook finds the template checkout from what
cookiecutter and cruft put in the context (``_repo_dir``; ``_template`` and ``_commit``), copies its
git-tracked files minus this machinery into the new project, renames them and re-aims them at the
team's data; the post-generation hook removes the placeholder and makes the first commit.

Standard library + PyYAML only, because cookiecutter's hooks run with cookiecutter's own Python. The
data contract and CODEOWNERS are written by the new project's own code (its ``inference`` and
``governance`` modules, imported from the copied tree), not by copies of it here.

``python hooks/scaffold.py retarget --project DIR ...`` re-aims an existing project (maintainers).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import filecmp
import importlib
import io
import json
import keyword
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
PLACEHOLDER = "GENERATED_BY_HOOKS.md"  # the one file in TEMPLATE_DIR; the post-generation hook removes it
# Template machinery: used to generate projects, never part of a generated project.
MACHINERY = ("cookiecutter.json", "hooks/", f"{TEMPLATE_DIR}/", "tests/template/", ".cruft.json")
# Files whose content is data, not text to rename.
NO_RENAME_PREFIXES = ("data/",)
REGISTRY_PREFIXES = (".github/", "serving/")
RISK_TIERS = ("low", "medium", "high")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
TEAM_RE = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]*)(?:/[A-Za-z0-9._-]+)?$")
REGISTRY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]+)?(?:/[a-z0-9._-]+)*$")
# Free text (names, descriptions) lands in YAML, TOML, Markdown and Python strings: refuse the
# characters that would need escaping in one of them rather than half-escape them.
FORBIDDEN_TEXT = set('"\\`${}#<>|*\n\r\t')
COLUMN_FORBIDDEN = set("\n\r,")
NUMERIC_DISTINCT_MIN = 10  # a numeric protected column with more distinct values is banded


class ScaffoldError(Exception):
    """A bad answer or a tree that cannot be retargeted; the message says what to change."""


# --------------------------------------------------------------------------------------------------
# The template's files
# --------------------------------------------------------------------------------------------------


def git_files(root: Path) -> list[str]:
    """Files in git's index (committed or staged) that exist on disk: what a clone of the template holds."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "-z"], cwd=root, check=True, capture_output=True
    ).stdout.decode()
    return sorted(f for f in out.split("\0") if f and (root / f).is_file())


def is_machinery(path: str) -> bool:
    return path in MACHINERY or path.startswith(tuple(m for m in MACHINERY if m.endswith("/")))


def source_files(root: Path) -> list[str]:
    """The template's files: ``git ls-files`` of a checkout, or every file of an exported tree."""
    if (root / ".git").exists():
        return git_files(root)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(root).parts
    )


def project_files(root: Path) -> list[str]:
    """What a generated project contains (before renaming): the template's files minus the machinery."""
    return [f for f in source_files(root) if not is_machinery(f)]


def copy_project(template: Path, project: Path) -> list[str]:
    """Copy the template's project files into ``project`` (regular files, never links). Returns them."""
    files = project_files(template)
    for rel in files:
        destination = project / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / rel, destination)  # follows a link: the copy is a regular file
        shutil.copymode(template / rel, destination)
    return files


def export_commit(source: str, commit: str, destination: Path) -> Path:
    """The tree of ``commit`` of the template at ``source`` (a local checkout or a git URL), exported
    into ``destination`` with ``git archive`` (what cruft generates from)."""
    repo = Path(source)
    if not (repo.is_dir() and (repo / ".git").exists()):
        repo = destination.parent / "clone"
        subprocess.run(
            ["git", "clone", "--quiet", "--no-checkout", source, str(repo)], check=True, capture_output=True
        )
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit], check=True, capture_output=True
    ).stdout
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # pragma: no cover - Python without the extraction filters
            tar.extractall(destination)
    return destination


def is_template(root: Path) -> bool:
    return (root / "cookiecutter.json").is_file() and (root / "hooks" / "scaffold.py").is_file()


def locate_template(answers: dict, environ: dict[str, str], scratch: Path) -> Path:
    """The template tree this generation copies.

    cookiecutter puts its checkout in ``_repo_dir`` (the path as typed, or its clone of a git URL at
    ``--checkout``); a relative path is relative to where it ran (``PWD``, or ``_output_dir`` when no
    ``-o`` was given). cruft gives ``_template`` (an absolute path or a URL) and ``_commit``: that
    commit is exported into ``scratch``.
    """
    repo_dir = str(answers.get("_repo_dir") or "")
    if repo_dir:
        path = Path(repo_dir).expanduser()
        bases = [Path(b) for b in (environ.get("PWD"), answers.get("_output_dir")) if b]
        candidates = [path] if path.is_absolute() else [base / path for base in bases]
        for candidate in candidates:
            if is_template(candidate):
                return candidate.resolve()
        tried = ", ".join(str(c) for c in candidates) or repo_dir
        raise ScaffoldError(f"cannot find the template checkout (looked at {tried}); pass its absolute path")
    template, commit = answers.get("_template"), answers.get("_commit")
    if template and commit:
        try:
            tree = export_commit(str(template), str(commit), scratch / "tree")
        except subprocess.CalledProcessError as error:
            raise ScaffoldError(
                f"cannot read commit {commit} of the template {template}: {error.stderr.decode().strip()}"
            ) from error
        if is_template(tree):
            return tree
        raise ScaffoldError(f"{template} at {commit} is not this template (no hooks/scaffold.py)")
    raise ScaffoldError("neither cookiecutter's _repo_dir nor cruft's _template/_commit is in the context")


# --------------------------------------------------------------------------------------------------
# Answers and identity
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Every name a project carries; the retarget maps one identity onto another."""

    name: str
    slug: str
    package: str
    description: str
    author: str
    github_owner: str
    github_repo: str
    registry: str
    teams: dict[str, str] = field(default_factory=dict)  # role -> @handle
    python_version: str = "3.11"

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.github_owner.lower()}/{self.slug}"


@dataclass(frozen=True)
class DataAnswers:
    path: str
    target: str
    positive_label: str
    protected: tuple[str, ...]
    risk_tier: str = "high"


def parse_list(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


def _check_text(label: str, value: str, problems: list[str], extra_forbidden: str = "") -> None:
    if not value or value != value.strip():
        problems.append(f"{label} must be non-empty without leading or trailing spaces, got {value!r}")
        return
    bad = sorted(set(value) & (FORBIDDEN_TEXT | set(extra_forbidden)))
    if bad:
        problems.append(
            f"{label} {value!r} contains {' '.join(bad)}; use letters, digits, spaces and - _ . , ( ) &"
        )


def validate_identity(identity: Identity, reserved: Iterable[str] = ()) -> list[str]:
    """Every problem with the names, each with what is expected (empty list: all good)."""
    problems: list[str] = []
    _check_text("project_name", identity.name, problems, extra_forbidden="':")
    _check_text("description", identity.description, problems)
    _check_text("author", identity.author, problems, extra_forbidden=":")
    if not SLUG_RE.match(identity.slug):
        problems.append(
            f"project_slug {identity.slug!r} must be lowercase ASCII letters and digits separated by single "
            "hyphens, starting with a letter (e.g. churn-model)"
        )
    if not PACKAGE_RE.match(identity.package) or keyword.iskeyword(identity.package):
        problems.append(
            f"package_name {identity.package!r} must be a lowercase Python identifier (letters, digits, _), "
            "e.g. churn_model"
        )
    elif identity.package in sys.stdlib_module_names:
        problems.append(f"package_name {identity.package!r} shadows the standard library module of that name")
    reserved = {r.lower().replace("_", "-") for r in reserved}
    for label, value in (("project_slug", identity.slug), ("package_name", identity.package)):
        if value.replace("_", "-") in reserved:
            problems.append(
                f"{label} {value!r} is the name of one of the project's dependencies; pick another"
            )
    if not OWNER_RE.match(identity.github_owner):
        problems.append(f"github_owner {identity.github_owner!r} is not a GitHub user or organisation name")
    if not REPO_RE.match(identity.github_repo):
        problems.append(f"github_repo {identity.github_repo!r} is not a GitHub repository name")
    if not REGISTRY_RE.match(identity.registry):
        problems.append(
            f"container_registry {identity.registry!r} must look like ghcr.io or registry.example.com:5000"
        )
    for role, team in identity.teams.items():
        if not TEAM_RE.match(team):
            problems.append(f"owners_{role} {team!r} must be a GitHub handle like @org/team or @user")
    if identity.python_version not in PYTHON_VERSIONS:
        problems.append(
            f"python_version {identity.python_version!r} must be one of {', '.join(PYTHON_VERSIONS)}"
        )
    return problems


def validate_data_answers(answers: DataAnswers) -> list[str]:
    problems: list[str] = []
    if not answers.target.strip():
        problems.append("target must name the column to predict")
    if not answers.positive_label.strip():
        problems.append("positive_label must be the target value the model scores (e.g. bad, yes, 1)")
    for label, value in [
        ("target", answers.target),
        *(("protected attribute", p) for p in answers.protected),
    ]:
        if set(value) & COLUMN_FORBIDDEN:
            problems.append(f"{label} {value!r} cannot contain a comma or a line break")
    if answers.target in answers.protected:
        problems.append(
            f"target {answers.target!r} is also listed as a protected attribute; "
            "fairness is measured across protected groups, so the target cannot be one"
        )
    duplicates = sorted({p for p in answers.protected if answers.protected.count(p) > 1})
    if duplicates:
        problems.append(f"protected attributes listed twice: {', '.join(duplicates)}")
    if answers.risk_tier not in RISK_TIERS:
        problems.append(f"risk_tier {answers.risk_tier!r} must be one of {', '.join(RISK_TIERS)}")
    return problems


def _load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}


def _owners_teams(project: Path) -> dict[str, str]:
    """role -> @handle from governance/owners.yaml: the first handle listed under each role key."""
    raw = _load_yaml(project / "governance" / "owners.yaml")
    teams: dict[str, str] = {}

    def first_handle(value) -> str | None:
        if isinstance(value, str) and value.startswith("@"):
            return value
        if isinstance(value, list):
            for item in value:
                found = first_handle(item)
                if found:
                    return found
        if isinstance(value, dict):
            for key in ("team", "owner", "owners", "handle", "github"):
                if key in value:
                    found = first_handle(value[key])
                    if found:
                        return found
        return None

    def walk(node) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            role = _role_of(str(key))
            handle = first_handle(value)
            if role and handle and role not in teams:
                teams[role] = handle
            walk(value)

    walk(raw)
    return teams


def _role_of(key: str) -> str | None:
    key = key.lower().replace("-", "_")
    if "risk" in key:
        return "model_risk"
    if "platform" in key or "mlops" in key or "infra" in key:
        return "platform"
    if key.startswith("data"):
        return "data"
    return None


def current_identity(project: Path) -> Identity:
    """Read the names the project carries now, from the files that own them."""
    params = _load_yaml(project / "params.yaml")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    packages = sorted(p.parent.name for p in (project / "src").glob("*/__init__.py"))
    if len(packages) != 1:
        raise ScaffoldError(f"{project / 'src'}: expected exactly one package, found {packages}")
    teams = _owners_teams(project)
    owner, repo = _github_coordinates(project, teams, params["project"]["slug"])
    authors = pyproject.get("authors") or [{"name": ""}]
    python_version = _python_version(project)
    return Identity(
        name=params["project"]["name"],
        slug=params["project"]["slug"],
        package=packages[0],
        description=pyproject.get("description", ""),
        author=authors[0].get("name", ""),
        github_owner=owner,
        github_repo=repo,
        registry=(params.get("serving") or {}).get("image_registry", "ghcr.io"),
        teams=teams,
        python_version=python_version,
    )


def _github_coordinates(project: Path, teams: dict[str, str], slug: str) -> tuple[str, str]:
    """owner/repo: from .cruft.json answers, else the owners' organisation, else placeholders."""
    cruft = project / ".cruft.json"
    if cruft.is_file():
        answers = json.loads(cruft.read_text(encoding="utf-8")).get("context", {}).get("cookiecutter", {})
        if answers.get("github_owner") and answers.get("github_repo"):
            return answers["github_owner"], answers["github_repo"]
    orgs = [t[1:].split("/")[0] for t in teams.values() if "/" in t]
    return (orgs[0] if orgs else "your-org"), slug


def _python_version(project: Path) -> str:
    pinned = project / ".python-version"
    if pinned.is_file():
        return pinned.read_text(encoding="utf-8").strip()
    return "3.11"


# --------------------------------------------------------------------------------------------------
# Data: header, values, same-as-sample
# --------------------------------------------------------------------------------------------------


def data_format(path: Path) -> str:
    return "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"


def read_columns(path: Path) -> list[str]:
    """Column names from a CSV header (csv module) or a Parquet schema (pyarrow, when importable)."""
    if data_format(path) == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            log.warning("%s: pyarrow is not importable here; column names are not checked", path)
            return []
        return [str(name).strip() for name in pq.read_schema(path).names]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    columns = [c.strip() for c in header]
    if len(columns) == 1 and ";" in columns[0]:
        raise ScaffoldError(
            f"{path}: the header has no commas but has semicolons; save the file comma-separated"
        )
    return columns


def column_values(path: Path, column: str) -> list[str]:
    """One column's non-empty values as text (CSV only; Parquet when pyarrow is importable)."""
    if data_format(path) == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return []
        values = pq.read_table(path, columns=[column]).column(0).to_pylist()
        return [str(v) for v in values if v is not None]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        return [row[column].strip() for row in reader if (row.get(column) or "").strip()]


def check_data(path: Path, answers: DataAnswers) -> list[str]:
    """The data file exists and has the target, the positive label and the protected columns."""
    if not path.is_file():
        return [f"data file {path} not found"]
    try:
        columns = read_columns(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return [f"{path}: cannot read the header: {error}"]
    except ScaffoldError as error:
        return [str(error)]
    if not columns:
        return []
    problems = []
    wanted = [("target", answers.target)] + [("protected attribute", p) for p in answers.protected]
    for label, name in wanted:
        if name not in columns:
            problems.append(f"{path}: {label} column {name!r} not found (columns: {', '.join(columns)})")
    if answers.target in columns:
        labels = sorted(set(column_values(path, answers.target)))
        if labels and answers.positive_label not in labels:
            problems.append(
                f"{path}: positive_label {answers.positive_label!r} never occurs in {answers.target!r} "
                f"(values: {', '.join(labels[:20])})"
            )
        elif len(labels) > 2:
            problems.append(
                f"{path}: target {answers.target!r} has {len(labels)} values; the project scores a binary outcome"
            )
    return problems


def median_split(path: Path, column: str) -> float | None:
    """A cut point for a numeric protected column with many values (None: treat values as groups)."""
    values = column_values(path, column)
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return None
    if len(set(numbers)) <= NUMERIC_DISTINCT_MIN:
        return None
    cut = statistics.median(numbers)
    return float(round(cut)) if abs(cut) >= 10 else round(cut, 2)


# --------------------------------------------------------------------------------------------------
# Line-based YAML editing (keeps the comments that document params.yaml)
# --------------------------------------------------------------------------------------------------

_KEY_LINE = re.compile(r"^(?P<indent>[ ]*)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"yes", "no", "y", "n", "true", "false", "on", "off", "null", "~"}


def yaml_scalar(value) -> str:
    """A YAML value that reads back as exactly ``value`` (strings like 'yes' or '1' are quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    if ": " not in text and " #" not in text and not text[:1].isspace():
        try:
            if yaml.safe_load(f"k: {text}") == {"k": text}:
                return text  # plain scalars read better (German Credit Scoring, not "German Credit Scoring")
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _find_key(lines: list[str], dotted: str) -> tuple[int, int]:
    path = dotted.split(".")
    stack: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if [key for _, key in stack] == path:
            return index, indent
    raise ScaffoldError(f"key {dotted} not found")


def _block_end(lines: list[str], index: int, indent: int) -> int:
    end = index + 1
    last_content = index
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if len(line) - len(line.lstrip(" ")) <= indent:
                break
            last_content = end
        end += 1
    return last_content + 1


def _split_comment(rest: str) -> tuple[str, str]:
    match = re.search(r"(\s+#.*)$", rest)
    if match and rest.count('"') % 2 == 0:
        return rest[: match.start()], match.group(1)
    return rest, ""


def set_yaml(text: str, dotted: str, value, comment: str | None = None) -> str:
    """Set ``dotted`` to ``value`` on its own line, dropping any nested block under it."""
    lines = text.splitlines(keepends=True)
    index, indent = _find_key(lines, dotted)
    match = _KEY_LINE.match(lines[index].rstrip("\n"))
    old_value, old_comment = _split_comment(match["rest"])
    tail = f"  # {comment}" if comment else old_comment
    end = _block_end(lines, index, indent)
    if end == index + 1 and comment is None and old_value.strip():
        with contextlib.suppress(yaml.YAMLError):
            if yaml.safe_load(old_value) == value and type(yaml.safe_load(old_value)) is type(value):
                return text  # unchanged: keep the line exactly as the team wrote it
    lines[index:end] = [f"{match['indent']}{match['key']}: {yaml_scalar(value)}{tail}\n"]
    return "".join(lines)


def set_yaml_block(text: str, dotted: str, block: list[str]) -> str:
    """Replace the nested block under ``dotted`` with ``block`` lines (indented relative to the key)."""
    lines = text.splitlines(keepends=True)
    index, indent = _find_key(lines, dotted)
    match = _KEY_LINE.match(lines[index].rstrip("\n"))
    _old, old_comment = _split_comment(match["rest"])
    end = _block_end(lines, index, indent)
    pad = " " * (indent + 2)
    lines[index:end] = [f"{match['indent']}{match['key']}:{old_comment}\n", *(pad + b + "\n" for b in block)]
    return "".join(lines)


def _get(mapping: dict, dotted: str):
    for key in dotted.split("."):
        mapping = mapping[key]
    return mapping


# --------------------------------------------------------------------------------------------------
# Retarget
# --------------------------------------------------------------------------------------------------


@dataclass
class RetargetPlan:
    old: Identity
    new: Identity
    data: DataAnswers
    data_source: Path | None  # the file to copy into data/raw (None: keep what params.yaml names)
    same_data: bool = False  # the bundled sample with its own target and protected attributes
    notes: list[str] = field(default_factory=list)


def _token_pattern(token: str, word: str) -> re.Pattern[str]:
    """``token`` not glued to more name characters; a boundary is only needed where the token has one."""
    before = rf"(?<![{word}])" if re.match(r"[\w.-]", token[0]) else ""
    after = rf"(?![{word}])" if re.match(r"[\w.-]", token[-1]) else ""
    return re.compile(before + re.escape(token) + after)


def name_replacements(old: Identity, new: Identity) -> list[tuple[re.Pattern[str], str]]:
    """Word-bounded replacements of the old names, longest first so that no name eats another."""
    pairs: list[tuple[str, str, str]] = []  # (old, new, word characters that bound it)
    if old.github_owner != new.github_owner or old.github_repo != new.github_repo:
        pairs.append(
            (f"{old.github_owner}/{old.github_repo}", f"{new.github_owner}/{new.github_repo}", r"\w.-")
        )
    if old.image != new.image:
        pairs.append((old.image, new.image, r"\w.-"))
    for role, team in old.teams.items():
        if role in new.teams and new.teams[role] != team:
            pairs.append((team, new.teams[role], r"\w.-"))
    pairs += [
        (old.description, new.description, ""),
        (old.name, new.name, r"\w"),
        (old.package, new.package, r"\w"),
        (old.slug, new.slug, r"\w-"),
        (old.author, new.author, r"\w"),
    ]
    if old.github_owner != new.github_owner:
        # only where it is unmistakably the owner: team handles and GitHub/registry paths
        for prefix in ("@", "github.com/", f"{old.registry}/", f"{new.registry}/"):
            pairs.append((f"{prefix}{old.github_owner}/", f"{prefix}{new.github_owner}/", r"\w.-"))
    pairs = [(o, n, w) for o, n, w in pairs if o and o != n]
    pairs.sort(key=lambda p: len(p[0]), reverse=True)
    out = []
    for old_text, new_text, word in pairs:
        pattern = _token_pattern(old_text, word) if word else re.compile(re.escape(old_text))
        out.append((pattern, new_text))
    return out


def _python_replacements(old: str, new: str) -> list[tuple[re.Pattern[str], str]]:
    if old == new:
        return []
    o, n = re.escape(old), new
    return [
        (re.compile(rf"(python:){o}(?=[-\s\"']|$)", re.M), rf"\g<1>{n}"),
        (re.compile(rf"(python-version:\s*[\"']?){o}(?=[\"']?\s*$)", re.M), rf"\g<1>{n}"),
        (re.compile(rf"(--python[ =]){o}\b"), rf"\g<1>{n}"),
    ]


def is_text(path: Path) -> bool:
    try:
        chunk = path.read_bytes()[:8192]
    except OSError:
        return False
    if b"\0" in chunk:
        return False
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(chunk) - 4  # a multi-byte character cut at the chunk's end
    return True


def _project_tree(project: Path) -> list[Path]:
    skip = {".git", ".venv", ".dvc/cache", ".dvc/tmp", "node_modules"}
    files = []
    for dirpath, dirnames, filenames in os.walk(project):
        rel_dir = Path(dirpath).relative_to(project).as_posix()
        dirnames[:] = [
            d
            for d in dirnames
            if (f"{rel_dir}/{d}" if rel_dir != "." else d) not in skip and d != "__pycache__"
        ]
        files += [Path(dirpath, f) for f in filenames]
    return files


def rewrite_names(project: Path, old: Identity, new: Identity) -> list[str]:
    """Rename paths and rewrite names in every text file outside data/. Returns the files changed."""
    replacements = name_replacements(old, new) + _python_replacements(old.python_version, new.python_version)
    # the bare registry host is only unambiguous where images are built and pushed
    registry = [(_token_pattern(old.registry, r"\w.-"), new.registry)] if old.registry != new.registry else []
    changed = []
    for path in _project_tree(project):
        rel = path.relative_to(project).as_posix()
        if rel.startswith(NO_RENAME_PREFIXES) or path.is_symlink() or not is_text(path):
            continue
        text = path.read_text(encoding="utf-8")
        new_text = text
        for pattern, value in replacements + (registry if rel.startswith(REGISTRY_PREFIXES) else []):
            # names are literal text; the python-version patterns use \g<1> group references
            new_text = pattern.sub(lambda m, v=value: m.expand(v) if "\\g<" in v else v, new_text)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
            changed.append(rel)
    # rename folders and files named after the package or the slug, deepest first
    for path in sorted(project.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel_parts = path.relative_to(project).parts
        if rel_parts[0] in {".git", ".venv", "data"}:
            continue
        renamed = path.name.replace(old.package, new.package) if old.package != new.package else path.name
        renamed = renamed.replace(old.slug, new.slug) if old.slug != new.slug else renamed
        if renamed != path.name:
            path.rename(path.with_name(renamed))
            changed.append(f"{path.relative_to(project).as_posix()} -> {renamed}")
    if new.python_version != old.python_version and (project / ".python-version").is_file():
        (project / ".python-version").write_text(new.python_version + "\n", encoding="utf-8")
    return changed


def rewrite_structured(project: Path, new: Identity) -> None:
    """Names in structured files, quoted for their format (free text may hold spaces and non-ASCII)."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")

    def toml(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string

    text = re.sub(r'(?m)^name = ".*"$', lambda _m: f"name = {toml(new.slug)}", text, count=1)
    text = re.sub(
        r'(?m)^description = ".*"$', lambda _m: f"description = {toml(new.description)}", text, count=1
    )
    text = re.sub(
        r"(?m)^authors = \[.*\]$", lambda _m: f"authors = [{{ name = {toml(new.author)} }}]", text, count=1
    )
    pyproject.write_text(text, encoding="utf-8")
    tomllib.loads(text)  # fail here, not in the user's first `uv sync`

    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    text = set_yaml(text, "project.name", new.name)
    text = set_yaml(text, "project.slug", new.slug)
    text = set_yaml(text, "serving.image_registry", new.registry)
    params.write_text(text, encoding="utf-8")

    lock = project / "uv.lock"
    if lock.is_file():
        # the project's own entry; other packages keep their names (a slug equal to one is refused)
        lock.write_text(
            re.sub(
                r'(\[\[package\]\]\nname = ")[^"]+("\nversion = "[^"]+"\nsource = \{ editable = "\." \})',
                lambda m: f"{m.group(1)}{new.slug}{m.group(2)}",
                lock.read_text(encoding="utf-8"),
            ),
            encoding="utf-8",
        )


def _protected_block(plan: RetargetPlan, data_file: Path) -> list[str]:
    block = []
    for name in plan.data.protected:
        block.append(f"- name: {yaml_scalar(name)}")
        cut = median_split(data_file, name) if data_file.is_file() else None
        if cut is not None:
            cut_text = f"{cut:g}"
            block.append(
                f"  bins: [{cut_text}]  # inferred median split: replace with the bands your policy uses"
            )
            block.append(
                f"  labels: [{yaml_scalar('under_' + cut_text)}, {yaml_scalar(cut_text + '_and_over')}]"
            )
            plan.notes.append(
                f"protected attribute {name!r} is numeric: banded at its median {cut_text}; review"
            )
    return block or ["[]"]


def _gate_defaults_for_new_data(text: str) -> str:
    """The sample's base-rate-dependent limits mean nothing for other data.

    A new project starts with one metric limit that holds for any base rate (ROC AUC clearly above
    chance). The cost matrix (it sets the decision threshold), fairness, regression, latency and size
    limits are policy and stay: review them. An even cost matrix was tried and is not the default:
    at threshold 0.5 the recoded sample's first model failed the demographic parity ratio.
    """
    raw = yaml.safe_load(text)
    gate = raw.get("gate") or {}
    if "min_metrics" in gate:
        text = set_yaml_block(
            text, "gate.min_metrics", ["roc_auc: 0.60             # clearly better than chance; raise it"]
        )
    if "max_metrics" in gate:
        text = set_yaml(
            text,
            "gate.max_metrics",
            {},
            comment="brier, expected_cost: add once base rate and costs are known",
        )
    return text


def rewrite_params_for_data(project: Path, plan: RetargetPlan, data_rel: str) -> None:
    """Aim params.yaml at the data; with other data, drop every setting that named the sample's columns."""
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    text = set_yaml(text, "project.risk_tier", plan.data.risk_tier)
    if not plan.same_data:
        fmt = data_format(project / data_rel)
        text = set_yaml(text, "data.path", data_rel)
        text = set_yaml(text, "data.format", fmt)
        text = set_yaml(text, "data.target", plan.data.target)
        text = set_yaml(
            text, "data.positive_label", plan.data.positive_label, comment="the class the model scores"
        )
        text = set_yaml(text, "data.entity_key", None)
        protected = _protected_block(plan, project / data_rel)
        if protected == ["[]"]:
            text = set_yaml(text, "data.protected_attributes", [])
        else:
            text = set_yaml_block(text, "data.protected_attributes", protected)
        text = _gate_defaults_for_new_data(text)
        raw = yaml.safe_load(text)
        if (raw.get("evaluation") or {}).get("slices"):
            text = set_yaml(text, "evaluation.slices", [], comment="columns to break metrics down by")
        if "per_feature" in (raw.get("drift") or {}):  # the sample's example names a sample column
            text = set_yaml(
                text,
                "drift.per_feature",
                {},
                comment="e.g. {<column>: {psi_threshold: 0.3, ks_threshold: 0.15}}",
            )
    params.write_text(text, encoding="utf-8")
    written = yaml.safe_load(text)
    expected = {"project.risk_tier": plan.data.risk_tier}
    if not plan.same_data:
        expected |= {
            "data.path": data_rel,
            "data.target": plan.data.target,
            "data.positive_label": plan.data.positive_label,
        }
    for key, value in expected.items():
        if _get(written, key) != value:
            raise ScaffoldError(
                f"params.yaml: {key} reads back as {_get(written, key)!r}, expected {value!r}"
            )
    names = [p["name"] for p in _get(written, "data.protected_attributes") or []]
    if not plan.same_data and names != list(plan.data.protected):
        raise ScaffoldError(f"params.yaml: protected attributes read back as {names}")


def infer_contract(project: Path, package: str, plan: RetargetPlan, data_rel: str) -> None:
    """Fresh features.yaml and expectations.json from the team's data (the sample's are wrong for it)."""
    params = _load_yaml(project / "params.yaml")
    features_path = project / params.get("features", "features/features.yaml")
    suite_path = project / (params.get("validation") or {}).get("suite", "features/expectations.json")
    src = str(project / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    inference = importlib.import_module(f"{package}.inference")
    with contextlib.chdir(
        project
    ):  # relative paths: the suite records its source, and must not name a temp dir
        _write_contract(
            inference, plan, data_rel, features_path.relative_to(project), suite_path.relative_to(project)
        )


def _write_contract(
    inference, plan: RetargetPlan, data_rel: str, features_path: Path, suite_path: Path
) -> None:
    owner = plan.new.teams.get("data", "")
    inference.write_contract(
        Path(data_rel),
        target=plan.data.target,
        positive_label=plan.data.positive_label,
        protected=list(plan.data.protected),
        out_features=features_path,
        out_suite=suite_path,
        owner=owner,
    )


def place_data(project: Path, plan: RetargetPlan) -> str:
    """Copy the team's data into data/raw/ and remove the sample; returns the path params.yaml names."""
    params = _load_yaml(project / "params.yaml")
    current = str(_get(params, "data.path"))
    if plan.same_data or plan.data_source is None:
        return current
    source = plan.data_source
    target_rel = f"data/raw/{source.name}"
    destination = project / target_rel
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not (destination.exists() and destination.resolve() == source.resolve()):
        shutil.copyfile(source, destination)
    sample = project / current
    if current != target_rel and sample.is_file():
        sample.unlink()
    return target_rel


# README passages that describe the bundled sample: `<!-- sample:KEY -->text<!-- /sample -->`. For
# other data each is replaced by a passage about that data; the markers stay so a later retarget can
# replace it again.
SAMPLE_BLOCK = re.compile(r"<!-- sample(?::(?P<key>[\w-]+))? -->(?P<body>.*?)<!-- /sample -->", re.S)


def _readme_passage(key: str, body: str, data: DataAnswers, data_rel: str) -> str:
    protected = ", ".join(f"`{p}`" for p in data.protected) or "none declared"
    if key == "lead":
        return f"A model that scores `{data.target}` = `{data.positive_label}` in `{data_rel}`,"
    if key in {"title", "proxy", "mitigation", "hints-cost", "explain-cost"}:  # the sample's measured figures
        return ""
    if key == "immutable":  # the sample's choice of immutable inputs; a drafted contract marks none
        return "(a drafted contract marks none: the data owners decide)"
    if key == "cost":
        return " (cost matrix in `params.yaml: evaluation.cost`)"
    if key == "drift":  # commands naming a sample column: let the simulator pick the data's own
        return re.sub(r" --features \S+", "", body)
    if key == "latency":  # the sample model's measured latencies: how to measure this project's
        return (
            "`uv run python benchmarks/latency_gate_benchmark.py --runs 3 --busy 0 2` compares it with "
            "wall-clock timing on this project's model, with 0 and 2 processes spinning beside it."
        )
    if key == "benchmarks":  # figures measured on the sample: how to measure on this data instead
        return (
            f"The template's figures were measured on its bundled sample, not on `{data_rel}`, so none\n"
            "are repeated here. Measure this project on its own data (each script prints its table):\n\n"
            "```bash\n"
            "uv run python benchmarks/pipeline_benchmark.py       # dvc repro from scratch, no-op, each stage\n"
            "uv run python benchmarks/latency_gate_benchmark.py   # the gate's latency check under CPU load\n"
            "uv run python benchmarks/serving_benchmark.py        # the service over HTTP, beside an empty one\n"
            "uv run python benchmarks/explain_benchmark.py        # explanations beside shap, step by step\n"
            "uv run python benchmarks/pr_workflow_benchmark.py    # the pull-request workflow under act\n"
            "```\n\n"
            "Record the figures with the machine and its load: on a shared 2-core runner they move by 10 % or more."
        )
    return (
        f"This project was generated from the GitOps MLOps template for `{data_rel}`: it predicts "
        f"`{data.target}`, scores the label `{data.positive_label}` and measures fairness across "
        f"{protected} (all in `params.yaml`). The data contract, `features/features.yaml`, was "
        "inferred from the file: review it, and the gate's thresholds, before the first pull request."
    )


def rewrite_readme(project: Path, data: DataAnswers, data_rel: str) -> bool:
    """Replace each sample-specific README passage with one about the team's data. True if changed."""
    readme = project / "README.md"
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")

    def passage(match: re.Match[str]) -> str:
        key = match["key"] or "about"
        body = _readme_passage(key, match["body"], data, data_rel)
        return f"<!-- sample:{key} -->{body}<!-- /sample -->"

    new_text = SAMPLE_BLOCK.sub(passage, text)
    if new_text != text:
        readme.write_text(new_text, encoding="utf-8")
    return new_text != text


# README passages about the template, not the project: `<!-- template:KEY -->text<!-- /template -->`.
# A generated project gets a passage about itself instead (or nothing), without the markers.
TEMPLATE_BLOCK = re.compile(
    r"<!-- template:(?P<key>[\w-]+) -->(?P<body>.*?)<!-- /template -->(?P<nl>\n?)", re.S
)


def count_tests(project: Path) -> int:
    """Test functions under tests/ (each parametrized case counts once)."""
    pattern = re.compile(r"^\s*(?:async\s+)?def test_\w*\(", re.M)
    return sum(
        len(pattern.findall(path.read_text(encoding="utf-8")))
        for path in (project / "tests").rglob("test_*.py")
    )


def rewrite_readme_for_project(project: Path) -> bool:
    """Drop the README's passages about the template; state this project's own test count."""
    readme = project / "README.md"
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")

    def passage(match: re.Match[str]) -> str:
        # a block that fills whole lines goes with its line break; one inside a line keeps it
        whole_lines = match.start() == 0 or text[match.start() - 1] == "\n"
        ending = "" if whole_lines else match["nl"]
        if match["key"] == "tests":
            return f"{count_tests(project)} test functions{match['nl']}"
        return ending

    new_text = TEMPLATE_BLOCK.sub(passage, text)
    if new_text != text:
        readme.write_text(new_text, encoding="utf-8")
    return new_text != text


def sample_results(project: Path) -> list[str]:
    """Files the pipeline writes into git (dvc.lock, uncached outs, metrics, plots): results of a run."""
    stages = (_load_yaml(project / "dvc.yaml").get("stages")) or {}
    paths = ["dvc.lock"]
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                if kind != "outs" or (options or {}).get("cache") is False:
                    paths.append(str(path))
    return paths


def drop_sample_results(project: Path) -> list[str]:
    """Remove the previous data's pipeline results: its metrics would be the gate's baseline otherwise."""
    removed = []
    for rel in sample_results(project):
        path = project / rel
        if path.is_file():
            path.unlink()
            removed.append(rel)
            with contextlib.suppress(OSError):  # only empty folders (metrics/, plots/, reports/)
                if path.parent != project:
                    path.parent.rmdir()
    return removed


def rewrite_governance(project: Path, new: Identity) -> None:
    """Regenerate CODEOWNERS from the (renamed) owners.yaml with the project's own governance code."""
    owners = project / "governance" / "owners.yaml"
    codeowners = project / ".github" / "CODEOWNERS"
    if not owners.is_file() or not codeowners.is_file():
        return
    src = str(project / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    governance = importlib.import_module(f"{new.package}.governance")
    write = getattr(governance, "codeowners_cli", None)
    if write is not None and (project / "governance" / "tiers.yaml").is_file():
        # CODEOWNERS and the branch ruleset for the project's risk tier (approvals, required reviewers)
        with contextlib.redirect_stdout(io.StringIO()):
            code = write(["--write", "--owners", str(owners), "--output", str(codeowners)])
        if code:
            raise ScaffoldError(f"{owners}: CODEOWNERS and the ruleset could not be regenerated (see above)")
        return
    codeowners.write_text(governance.render_codeowners(governance.load_owners(owners)), encoding="utf-8")


def retarget(project: Path, plan: RetargetPlan, infer: bool = True) -> list[str]:
    """Apply a plan to a project tree in place. Returns notes for the user."""
    problems = validate_identity(plan.new, reserved=_locked_packages(project, plan.old.slug))
    problems += validate_data_answers(plan.data)
    if plan.data_source is not None and not plan.same_data:
        problems += check_data(plan.data_source, plan.data)
    if problems:
        raise ScaffoldError("\n".join(problems))
    data_rel = place_data(project, plan)
    rewrite_params_for_data(project, plan, data_rel)
    if infer and not plan.same_data:
        infer_contract(project, plan.old.package, plan, data_rel)
    if not plan.same_data:
        rewrite_readme(project, plan.data, data_rel)
        if drop_sample_results(project):
            plan.notes.append(
                "the previous data's dvc.lock, metrics, plots and reports were removed: "
                "run `uv run dvc repro` and commit what it writes"
            )
    rewrite_names(project, plan.old, plan.new)
    rewrite_structured(project, plan.new)
    rewrite_governance(project, plan.new)
    return plan.notes


def _locked_packages(project: Path, own_slug: str) -> set[str]:
    lock = project / "uv.lock"
    if not lock.is_file():
        return set()
    names = set(re.findall(r'(?m)^name = "([^"]+)"$', lock.read_text(encoding="utf-8")))
    return names - {own_slug}


def is_sample(project: Path, data_file: Path | None, answers: DataAnswers) -> bool:
    """True when the answers keep the bundled data and its own target/label/protected attributes."""
    params = _load_yaml(project / "params.yaml")
    sample = project / str(_get(params, "data.path"))
    if data_file is None or not sample.is_file() or not data_file.is_file():
        return data_file is None
    same_file = data_file.resolve() == sample.resolve() or filecmp.cmp(data_file, sample, shallow=False)
    data = params["data"]
    same_answers = (
        answers.target == data["target"]
        and answers.positive_label == str(data["positive_label"])
        and list(answers.protected) == [p["name"] for p in data.get("protected_attributes") or []]
    )
    return same_file and same_answers


# --------------------------------------------------------------------------------------------------
# Cookiecutter hooks
# --------------------------------------------------------------------------------------------------


def _answers_identity(answers: dict) -> Identity:
    return Identity(
        name=str(answers["project_name"]),
        slug=str(answers["project_slug"]),
        package=str(answers["package_name"]),
        description=str(answers["description"]),
        author=str(answers["author"]),
        github_owner=str(answers["github_owner"]),
        github_repo=str(answers["github_repo"]),
        registry=str(answers["container_registry"]),
        teams={
            "model_risk": str(answers["owners_model_risk"]),
            "data": str(answers["owners_data"]),
            "platform": str(answers["owners_platform"]),
        },
        python_version=str(answers["python_version"]),
    )


def _answers_data(answers: dict) -> DataAnswers:
    return DataAnswers(
        path=str(answers["data_path"]).strip(),
        target=str(answers["target"]).strip(),
        positive_label=str(answers["positive_label"]).strip(),
        protected=parse_list(str(answers["protected_attributes"])),
        risk_tier=str(answers["risk_tier"]),
    )


def pre_generation(answers: dict, project: Path | None = None, template: Path | None = None) -> list[str]:
    """Run by the pre-generation hook, before any file is copied: the answers, then the data's header.

    The project folder is still empty, so the bundled sample is looked up in the template checkout.
    A data file not found here is left to the post-generation hook, which refuses it with the paths tried.
    """
    reserved: set[str] = set()
    if template is not None and (template / "params.yaml").is_file():
        reserved = _locked_packages(template, _load_yaml(template / "params.yaml")["project"]["slug"])
    problems = validate_identity(_answers_identity(answers), reserved=reserved)
    data = _answers_data(answers)
    problems += validate_data_answers(data)
    if problems or project is None:
        return problems
    candidates = data_candidates(data.path, project, answers, dict(os.environ))
    if template is not None and not Path(data.path).is_absolute():
        candidates.append(template / data.path)
    source = next((c for c in candidates if c.is_file()), None)
    return check_data(source, data) if source is not None else []


def data_candidates(data_path: str, project: Path, answers: dict, environ: dict[str, str]) -> list[Path]:
    """Where a relative data path may be, in order.

    The user typed the path relative to the folder they ran cookiecutter/cruft from: the shell's
    ``PWD``; cookiecutter's ``_output_dir`` (the project's parent by default); then the generated
    project itself (the bundled sample's ``data/raw/...``); and, for ``cruft update`` run inside the
    project, its own copy in ``data/raw/``.
    """
    path = Path(data_path).expanduser()
    if path.is_absolute():
        return [path]
    bases = []
    if environ.get("PWD"):
        bases.append(Path(environ["PWD"]))
    if answers.get("_output_dir"):
        bases.append(Path(answers["_output_dir"]))
    bases += [project.parent, project]
    candidates = [base / path for base in bases]
    if environ.get("PWD"):
        candidates.append(Path(environ["PWD"]) / "data" / "raw" / path.name)
    return list(dict.fromkeys(candidates))


def generate(project: Path, answers: dict, environ: dict[str, str] | None = None) -> list[str]:
    """Everything the pre-generation hook does: check the answers, copy the template's project files
    into the (empty) project folder ``project``, rename them and aim them at the data. Returns notes."""
    environ = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory(prefix="template-") as scratch:
        template = locate_template(answers, environ, Path(scratch))
        problems = pre_generation(answers, project=project, template=template)
        if problems:
            raise ScaffoldError("\n".join(problems))
        copy_project(template, project)
    return post_generation(project, answers, environ)


def post_generation(project: Path, answers: dict, environ: dict[str, str] | None = None) -> list[str]:
    """Rename and re-aim the copied project ``project`` at the answers (its files are in place)."""
    environ = dict(os.environ if environ is None else environ)
    under_cookiecutter = "_output_dir" in answers  # cruft calls generate_files itself and sets no _output_dir
    data = _answers_data(answers)
    candidates = data_candidates(data.path, project, answers, environ)
    source = next((c for c in candidates if c.is_file()), None)
    old = current_identity(project)
    new = _answers_identity(answers)
    notes: list[str] = []
    if source is None:
        tried = ", ".join(str(c) for c in candidates)
        if under_cookiecutter or not _cruft_update_in(environ):
            raise ScaffoldError(f"data_path {data.path!r}: no such file (looked at {tried})")
        # cruft update regenerates in a temp folder; without the data both sides skip the same steps
        notes.append(f"data file not found ({tried}); the contract is left as generated")
    plan = RetargetPlan(old=old, new=new, data=data, data_source=source)
    plan.same_data = is_sample(project, source, data)
    notes += retarget(project, plan, infer=source is not None)
    rewrite_readme_for_project(project)
    return notes


def _cruft_update_in(environ: dict[str, str]) -> bool:
    pwd = environ.get("PWD")
    return bool(pwd) and (Path(pwd) / ".cruft.json").is_file()


# --------------------------------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------------------------------


def retarget_cli(argv: list[str]) -> int:
    """`mlops retarget`: rename this project and/or aim it at another data file, in place."""
    parser = argparse.ArgumentParser(
        prog="python hooks/scaffold.py retarget", description=retarget_cli.__doc__
    )
    parser.add_argument("--project", type=Path, default=Path("."), help="project folder (default: .)")
    for option in (
        "name",
        "slug",
        "package",
        "description",
        "author",
        "github-owner",
        "github-repo",
        "registry",
    ):
        parser.add_argument(f"--{option}")
    parser.add_argument("--owners-model-risk")
    parser.add_argument("--owners-data")
    parser.add_argument("--owners-platform")
    parser.add_argument("--python-version")
    parser.add_argument(
        "--data", type=Path, help="data file to copy into data/raw and infer the contract from"
    )
    parser.add_argument("--target")
    parser.add_argument("--positive-label")
    parser.add_argument("--protected", help="comma-separated protected attribute columns")
    parser.add_argument("--risk-tier", choices=RISK_TIERS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    project = args.project.resolve()
    try:
        old = current_identity(project)
        params = _load_yaml(project / "params.yaml")
        slug = args.slug or old.slug
        new = replace(
            old,
            name=args.name or old.name,
            slug=slug,
            package=args.package or (slug.replace("-", "_") if args.slug else old.package),
            description=args.description or old.description,
            author=args.author or old.author,
            github_owner=args.github_owner or old.github_owner,
            github_repo=args.github_repo
            or (slug if args.slug and old.github_repo == old.slug else old.github_repo),
            registry=args.registry or old.registry,
            teams={
                **old.teams,
                **{
                    role: value
                    for role, value in (
                        ("model_risk", args.owners_model_risk),
                        ("data", args.owners_data),
                        ("platform", args.owners_platform),
                    )
                    if value
                },
            },
            python_version=args.python_version or old.python_version,
        )
        data_section = params["data"]
        data = DataAnswers(
            path=str(args.data or data_section["path"]),
            target=args.target or data_section["target"],
            positive_label=args.positive_label or str(data_section["positive_label"]),
            protected=parse_list(args.protected)
            if args.protected is not None
            else tuple(p["name"] for p in data_section.get("protected_attributes") or []),
            risk_tier=args.risk_tier or params["project"].get("risk_tier", "high"),
        )
        changes_data = args.data is not None or any(
            v is not None for v in (args.target, args.positive_label, args.protected)
        )
        source = (args.data.resolve() if args.data else project / data.path) if changes_data else None
        plan = RetargetPlan(old=old, new=new, data=data, data_source=source, same_data=not changes_data)
        notes = retarget(project, plan)
    except ScaffoldError as error:
        print(f"retarget: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    print(f"retargeted {project}: {new.name} ({new.package}); review the diff, then commit")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python hooks/scaffold.py retarget [options]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "retarget":
        print("usage: python hooks/scaffold.py retarget --project DIR [options]", file=sys.stderr)
        return 2
    return retarget_cli(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
