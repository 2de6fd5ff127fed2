"""Markdown rendering with jinja2: every text a pull request shows comes from a template here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("german_credit_scoring", "templates"),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * float(v):.{d}f}%"
    env.filters["cell"] = escape_cell
    env.filters["verdict"] = lambda ok: "✅ pass" if ok else "❌ fail"
    return env


def format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return "n/a"
    return f"{number:.{digits}f}"


def escape_cell(value: Any) -> str:
    """Make any value safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(template_name: str, **context: Any) -> str:
    """Render ``templates/<template_name>`` with strict undefined variables (a typo is an error)."""
    return _environment().get_template(template_name).render(**context)
