"""Turning what the model and the guest produced into HTML that cannot run.

Templates autoescape everything; the model's text goes through Markdown with
raw HTML off (so ``<script>`` in it is shown as text) and only safe link
schemes; code is highlighted by Pygments, which escapes it.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

TEMPLATES = Path(__file__).parent / "templates"

_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_formatter = HtmlFormatter(cssclass="highlight")
_python = PythonLexer()


def markdown(text: str | None) -> Markup:
    """The model's Markdown as HTML; raw HTML in it is escaped, not passed through."""
    return Markup(_markdown.render(text or ""))  # markdown-it escapes text and drops raw HTML


@lru_cache(maxsize=512)
def python(code: str) -> Markup:
    """Python source, highlighted (Pygments escapes it)."""
    return Markup(highlight(code, _python, _formatter))


def pygments_css() -> str:
    return _formatter.get_style_defs(".highlight")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def urlpart(value: str) -> str:
    """One part of a URL path, percent-encoded."""
    return quote(str(value), safe="")


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(markdown=markdown, python=python, when=when, seconds=seconds, as_json=as_json,
                       urlpart=urlpart)
    return env
