"""`mlops report`: the stages' Markdown sections assembled into one pull-request comment.

Each stage writes ``reports/<stage>.md``. This module puts the chosen sections under one header
(project, model version, commit, a verdict per stage) and keeps the result under GitHub's comment
limit. Shortening never cuts through a table: long tables are folded into ``<details>`` and, when that
is not enough, trimmed by whole rows with a visible "truncated: N rows omitted" note, keeping failing
(❌) rows first so the verdicts stay visible.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from german_credit_scoring import io, paths
from german_credit_scoring.errors import ProjectError

log = logging.getLogger(__name__)

GITHUB_LIMIT = 65_536
# Room left for the hidden marker `mlops comment` prepends and for multi-byte surprises.
DEFAULT_LIMIT = 65_000
COLLAPSE_ROWS = 20  # tables longer than this are folded into <details>
ROW_CAPS = (200, 100, 50, 25, 10, 5, 0)  # tried in order until the comment fits

REPORTS_DIR = Path("reports")
# Stage order of `--stage all`; names map to reports/<file>.md
# "compare" is `mlops compare`'s run record (reports/compare.md): production beside the candidate.
STAGE_ORDER = ("validation", "features", "train", "evaluate", "fairness", "gate", "compare", "drift")
ALIASES = {"validate": "validation"}
TITLES = {
    "ingest": "Ingest",
    "validation": "Data validation",
    "features": "Features",
    "train": "Training",
    "evaluate": "Evaluation",
    "fairness": "Fairness",
    "gate": "Promotion gate",
    "compare": "Candidate beside production",
    "drift": "Drift",
    "package": "Package",
}
# JSON results that carry a stage's verdict (first one found wins).
VERDICT_FILES = {
    "validation": (paths.VALIDATION_RESULT,),
    "gate": (paths.GATE_RESULT,),
    "drift": (REPORTS_DIR / "drift.json",),
}
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Section:
    stage: str
    title: str
    body: str | None  # None: the stage has not run (no Markdown file)
    source: str
    verdict: str
    has_heading: bool = False


# --- Markdown helpers ---------------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})(\s+.*)$")
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)]*\)")
REMOTE_IMG_TAG = re.compile(r"<img\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)


@dataclass
class Block:
    kind: str  # "text" or "table"
    lines: list[str]
    in_details: bool = False


def split_blocks(text: str) -> list[Block]:
    """Text and table blocks; lines inside code fences are never tables."""
    blocks: list[Block] = []
    lines = text.splitlines()
    in_fence = False
    details = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
        if (
            not in_fence
            and line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and TABLE_SEPARATOR.match(lines[i + 1])
        ):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(Block("table", lines[i:j], in_details=details > 0))
            i = j
            continue
        if not in_fence:
            details += line.count("<details") - line.count("</details>")
        if blocks and blocks[-1].kind == "text":
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block("text", [line]))
        i += 1
    return blocks


def _row_order(rows: list[str], cap: int) -> list[int]:
    """Indices of the rows to keep: failing rows first, then the rest, in their original order."""
    failing = [i for i, row in enumerate(rows) if "❌" in row]
    others = [i for i, row in enumerate(rows) if "❌" not in row]
    return sorted((failing + others)[:cap])


def shape_table(block: Block, cap: int | None, collapse_rows: int = COLLAPSE_ROWS) -> list[str]:
    """A table with at most ``cap`` rows (whole rows only), folded into <details> when long."""
    header, rows = block.lines[:2], block.lines[2:]
    out: list[str]
    omitted = 0
    if cap is not None and len(rows) > cap:
        omitted = len(rows) - cap
        if cap == 0:
            columns = [c.strip() for c in header[0].strip().strip("|").split("|")]
            return [
                "",
                f"_truncated: table of {len(rows)} rows omitted (columns: {', '.join(columns)})._",
                "",
            ]
        kept = _row_order(rows, cap)
        out = [*header, *(rows[i] for i in kept)]
    else:
        out = list(block.lines)
    note = [f"_truncated: {omitted} rows omitted._"] if omitted else []
    if len(out) - 2 > collapse_rows and not block.in_details:
        summary = f"{len(rows)} rows" + (f", {len(out) - 2} shown" if omitted else "")
        return [
            "",
            "<details>",
            f"<summary>Table: {summary}</summary>",
            "",
            *out,
            "",
            *note,
            "</details>",
            "",
        ]
    return [*out, "", *note] if note else out


def shape_markdown(text: str, cap: int | None = None, collapse_rows: int = COLLAPSE_ROWS) -> str:
    blocks = split_blocks(text)
    lines: list[str] = []
    for block in blocks:
        lines += shape_table(block, cap, collapse_rows) if block.kind == "table" else block.lines
    return "\n".join(lines)


def essentials(text: str, omitted_note: str) -> str:
    """Last resort for a huge section: headings, verdict lines and notes only, outside tables."""
    keep = []
    in_fence = False
    for block in split_blocks(text):
        if block.kind == "table":
            failing = [row for row in block.lines[2:] if "❌" in row]
            if failing:
                keep += ["", *block.lines[:2], *failing[:5], ""]
                if len(failing) > 5:
                    keep.append(f"_truncated: {len(failing) - 5} more failing rows omitted._")
            continue
        for line in block.lines:
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            if HEADING.match(line) or any(mark in line for mark in ("✅", "❌", "⚠️", "⏭️")):
                keep.append(line)
    return "\n".join([*keep, "", omitted_note])


def strip_remote_images(text: str) -> str:
    """No images hosted elsewhere: a remote image becomes its alt text."""
    text = REMOTE_IMAGE.sub(lambda m: f"[image omitted: {m.group(1) or 'remote image'}]", text)
    return REMOTE_IMG_TAG.sub("[image omitted]", text)


def normalise_headings(text: str, top: int = 2) -> tuple[str, bool]:
    """Shift headings so the section's highest one is level ``top``; tell whether it starts with one."""
    lines = text.splitlines()
    in_fence = False
    levels = []
    for line in lines:
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := HEADING.match(line)):
            levels.append(len(match.group(1)))
    if not levels:
        return text, False
    shift = top - min(levels)
    out = []
    in_fence = False
    for line in lines:
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := HEADING.match(line)):
            line = "#" * min(6, max(1, len(match.group(1)) + shift)) + match.group(2)
        out.append(line)
    first = next((line for line in out if line.strip()), "")
    return "\n".join(out), bool(HEADING.match(first))


# --- assembling ------------------------------------------------------------------------------------


def resolve_stages(names: Sequence[str]) -> list[str]:
    stages: list[str] = []
    for raw in names or ["all"]:
        name = ALIASES.get(raw, raw)
        expanded = list(STAGE_ORDER) if name == "all" else [name]
        for stage in expanded:
            if not STAGE_NAME.match(stage):
                raise ProjectError(
                    f"--stage {raw!r}: use a stage name such as {', '.join(STAGE_ORDER)} or all"
                )
            if stage not in stages:
                stages.append(stage)
    return stages


def _json_verdict(files: Iterable[Path]) -> str | None:
    for path in files:
        if not path.is_file():
            continue
        try:
            data = io.read_json(path)
        except (OSError, json.JSONDecodeError):
            return f"⚠️ unreadable {path}"
        if not isinstance(data, dict):
            continue
        for key in ("passed", "success"):
            if isinstance(data.get(key), bool):
                return "✅ pass" if data[key] else "❌ fail"
        if isinstance(data.get("drift_detected"), bool):
            return "⚠️ drift detected" if data["drift_detected"] else "✅ no drift"
        if data.get("verdict") in DRIFT_VERDICTS:
            return DRIFT_VERDICTS[data["verdict"]]
    return None


# reports/drift.json "verdict" (written by `mlops drift`) -> the summary table's cell
DRIFT_VERDICTS = {
    "no_drift": "✅ no drift",
    "drift": "⚠️ drift detected",
    "insufficient_data": "⏸️ not enough data",
}


def load_section(stage: str, reports_dir: Path = REPORTS_DIR) -> Section:
    title = TITLES.get(stage, stage.replace("_", " ").capitalize())
    source = reports_dir / f"{stage}.md"
    verdict_files = VERDICT_FILES.get(stage, ())
    if not source.is_file():
        return Section(stage, title, None, str(source), "⏭️ not run")
    body = source.read_text(encoding="utf-8")
    body, has_heading = normalise_headings(strip_remote_images(body))
    facts = run_facts(RUN_RECORD_OF.get(stage, stage))
    if facts:
        body = body.rstrip("\n") + "\n\n" + facts + "\n"
    verdict = _json_verdict(verdict_files) or "ran"
    return Section(stage, title, body, str(source), verdict, has_heading)


# report section -> the stage whose run record (runs/<stage>.json) it shows
RUN_RECORD_OF = {"validation": "validate"}


def run_facts(stage: str, runs_dir: Path | None = None) -> str:
    """One line of this run's volatile facts (duration, commit, MLflow run), which no DVC output holds."""
    from german_credit_scoring import runs

    record = runs.read(stage, runs_dir)
    if record is None:
        return ""
    parts = []
    if record.facts.get("how") == "restored":  # mlops run-stage: no recomputation in this job
        parts.append("restored from DVC's run-cache (a run with these exact inputs; not recomputed here)")
    elif record.seconds is not None:
        parts.append(f"ran in {record.seconds:.1f} s")
    if record.git_commit:
        dirty = " with uncommitted changes" if record.git_dirty else ""
        parts.append(f"at commit `{record.git_commit[:12]}`{dirty}")
    mlflow = record.facts.get("mlflow") or {}
    if mlflow.get("run_id"):
        run_id = f"`{mlflow['run_id']}`"
        link = f"[{run_id}]({mlflow['run_url']})" if mlflow.get("run_url") else run_id
        parts.append(f"MLflow run {link} in experiment `{mlflow.get('experiment', '')}`")
    if record.facts.get("latency"):  # the gate's measurement: the verdict is in metrics/gate.json
        from german_credit_scoring.lifecycle.gate import latency_note

        parts.append(latency_note(record.facts["latency"]))
    return f"<sub>Run: {'; '.join(parts)}.</sub>" if parts else ""


def render_comment(
    *,
    title: str,
    project: str,
    model_version: str,
    commit: str,
    sections: Sequence[Section],
    extras: Sequence[dict[str, str]] = (),
    limit: int = DEFAULT_LIMIT,
) -> str:
    """The whole comment, shortened (never mid-table) until it is at most ``limit`` characters."""
    from german_credit_scoring.markdown import render

    def attempt(current: Sequence[Section], current_extras: Sequence[dict[str, str]], truncated: bool) -> str:
        return render(
            "pr_comment.md.j2",
            title=title,
            project=project,
            model_version=model_version,
            commit=commit,
            sections=current,
            extras=current_extras,
            truncated=truncated,
        )

    def shaped(cap: int | None) -> tuple[list[Section], list[dict[str, str]]]:
        return (
            [s if s.body is None else replace(s, body=shape_markdown(s.body, cap)) for s in sections],
            [{**e, "body": shape_markdown(e["body"], cap)} for e in extras],
        )

    current, current_extras = shaped(None)
    text = attempt(current, current_extras, False)
    if len(text) <= limit:
        return text
    for cap in ROW_CAPS:
        current, current_extras = shaped(cap)
        text = attempt(current, current_extras, True)
        if len(text) <= limit:
            return text
    # Still too long: reduce the largest sections to their headings and verdict lines.
    current = list(current)
    for index in sorted(range(len(current)), key=lambda i: -len(current[i].body or "")):
        section = current[index]
        if section.body is None:
            continue
        note = (
            f"_truncated: {len(section.body):,} characters of this section omitted; see `{section.source}`._"
        )
        current[index] = replace(section, body=essentials(section.body, note))
        text = attempt(current, current_extras, True)
        if len(text) <= limit:
            return text
    current_extras = [{**e, "body": "_truncated: omitted to fit the comment limit._"} for e in current_extras]
    text = attempt(current, current_extras, True)
    if len(text) > limit:
        raise ProjectError(
            f"the report is {len(text):,} characters even with every section shortened (limit {limit:,})"
        )
    return text


# --- context: model version, commit, dvc diffs ---------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def model_version() -> str:
    for meta in (paths.CANDIDATE_META, paths.APPROVED_META):
        if meta.is_file():
            try:
                version = io.read_json(meta).get("version")
            except (OSError, json.JSONDecodeError, AttributeError):
                continue
            if version:
                return str(version)
    if paths.GATE_RESULT.is_file():
        try:
            return str(io.read_json(paths.GATE_RESULT).get("model_version") or "unknown")
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    return "unknown"


def first_existing_ref(refs: Sequence[str]) -> str | None:
    for ref in refs:
        if _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
            return ref
    return None


def dvc_diff(kind: str, ref: str, timeout: float = 300) -> str:
    """``dvc <kind> diff <ref> --md``; a failure is explained in one line instead of raised."""
    command = [sys.executable, "-m", "dvc", kind, "diff", ref, "--md"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"_`dvc {kind} diff {ref}` did not finish within {timeout:.0f} s._"
    except OSError as error:
        return f"_`dvc {kind} diff {ref}` could not run: {error}._"
    if out.returncode != 0:
        reason = next(
            (line.strip() for line in reversed(out.stderr.splitlines()) if line.strip()),
            f"exit code {out.returncode}",
        )
        return f"_`dvc {kind} diff {ref}` failed: {reason}_"
    blocks = split_blocks(out.stdout)
    rows = sum(len(b.lines) - 2 for b in blocks if b.kind == "table")
    text = "".join("".join(b.lines) for b in blocks if b.kind == "text").strip()
    if rows == 0 and not text:
        return f"_No {kind} changed against `{ref}`._"
    return out.stdout


def metrics_diff_extras(ref: str | None, refs: Sequence[str]) -> list[dict[str, str]]:
    chosen = ref or first_existing_ref(refs)
    if chosen is None:
        line = f"_No baseline to compare with: none of {', '.join(refs)} exists in this clone._"
        return [{"title": "Metrics and parameters against production", "body": line}]
    return [
        {"title": f"Metrics against `{chosen}`", "body": dvc_diff("metrics", chosen)},
        {"title": f"Parameters against `{chosen}`", "body": dvc_diff("params", chosen)},
    ]


# --- CLI -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops report", description="Assemble the stages' Markdown into the pull-request comment."
    )
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="STAGE",
        help=f"a section to include (repeatable): {', '.join(STAGE_ORDER)} or all (default: all)",
    )
    parser.add_argument("--output", type=Path, default=paths.PR_COMMENT, help="default: %(default)s")
    parser.add_argument("--title", default=None, help="heading of the comment")
    parser.add_argument(
        "--metrics-diff",
        nargs="?",
        const="",
        default=None,
        metavar="REF",
        help="add `dvc metrics diff` and `dvc params diff` against REF (default: the first of gate.baseline_refs)",
    )
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="maximum characters (%(default)s)")
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    return parser


def build_report(args: argparse.Namespace) -> str:
    from german_credit_scoring.settings import load_settings

    settings = load_settings(args.params)
    stages = resolve_stages(args.stage)
    sections = [load_section(stage) for stage in stages]
    extras: list[dict[str, Any]] = []
    if args.metrics_diff is not None:
        extras = metrics_diff_extras(args.metrics_diff or None, settings.gate.baseline_refs)
    if args.title:
        title = args.title
    elif len(stages) == 1:
        title = f"{sections[0].title} report"
    else:
        title = "Model report"
    return render_comment(
        title=title,
        project=settings.project.name,
        model_version=model_version(),
        commit=(_git("rev-parse", "--short=12", "HEAD") or "unknown"),
        sections=sections,
        extras=extras,
        limit=min(args.limit, GITHUB_LIMIT),
    )


def report_cli(argv: list[str]) -> int:
    """``mlops report``: write the comment body to ``--output`` (exit 2 when it cannot be built)."""
    args = build_parser().parse_args(argv)
    try:
        text = build_report(args)
    except ProjectError as error:
        print(f"mlops report: {error}", file=sys.stderr)
        return 2
    io.write_text(args.output, text)
    print(f"wrote {args.output} ({len(text):,} characters)")
    return 0
