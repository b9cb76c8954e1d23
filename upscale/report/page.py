"""One self-contained HTML page: sections of figures, tables and notes, nothing fetched.

Figures are embedded as base64 PNG ``data:`` URLs and the style sheet is inline, so the
page opens the same from a disk, an e-mail or a web server, offline. Every text that comes
from a run (names, paths, table cells) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Section:
    """A part of the page: an anchor, a heading, and its HTML (or a note saying why not).

    Attributes
    ----------
    key
        Anchor of the section (``#key``), also its ``id``.
    title
        Heading, plain text.
    body
        The section's HTML; a section whose part of the run is missing holds its note.
    note
        Why the section is empty and what makes its part (plain text); None when the run
        had the part.
    """

    key: str
    title: str
    body: str
    note: str | None = None

    @property
    def present(self) -> bool:
        """Whether the run had this section's part."""
        return self.note is None


def image_html(png: bytes, caption: str) -> str:
    """Embed a PNG as a ``data:`` URL in a figure with its caption (plain text)."""
    encoded = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{text}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def table_html(frame: pd.DataFrame, *, digits: int = 3, caption: str | None = None) -> str:
    """Render a table (cells escaped, floats rounded to ``digits``, missing values as a dash)."""
    body = frame.to_html(
        index=False,
        border=0,
        classes="data",
        na_rep="–",
        float_format=lambda value: f"{value:.{digits}f}",
        escape=True,
    )
    if caption:
        body = body.replace(">", f"><caption>{html.escape(caption)}</caption>", 1)
    return f'<div class="scroll">{body}</div>'


def note_html(text: str) -> str:
    """Write a note (plain text): a part left out, and how to add it."""
    return f'<p class="note">{html.escape(text)}</p>'


def paragraph_html(text: str) -> str:
    """Write a paragraph of plain text."""
    return f"<p>{html.escape(text)}</p>"


def facts_html(facts: Mapping[str, str]) -> str:
    """List short facts (plain text): a run's inputs, versions, command."""
    items = "".join(
        f"<dt>{html.escape(key)}</dt><dd>{html.escape(str(value))}</dd>"
        for key, value in facts.items()
    )
    return f"<dl>{items}</dl>"


def details_html(summary: str, body: str) -> str:
    """Fold a block (``<details>``): long tables a reader opens on demand."""
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 1.2em;
       color: #1d2327; line-height: 1.45; }
header { border-bottom: 2px solid #2a6f97; margin-bottom: 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccd; padding-top: 0.6em; }
nav ol { columns: 2; } nav a.missing { color: #888; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #444; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
table.data th, table.data td { padding: 0.2em 0.6em; border-bottom: 1px solid #dde; }
table.data td { text-align: right; } table.data caption { text-align: left; font-weight: 600; }
div.scroll { overflow-x: auto; }
p.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
iframe.webmap { width: 100%; height: 560px; border: 1px solid #ccd; }
.legend { display: flex; align-items: center; gap: 0.6em; font-size: 0.9em; }
.legend .bar { flex: 0 0 280px; height: 14px; border: 1px solid #999; }
footer { margin: 2em 0; font-size: 0.85em; color: #666; }
"""


def render_page(title: str, subtitle: str, sections: Sequence[Section], footer: str) -> str:
    """Assemble the page: a heading, a table of contents, the sections, a footer.

    Parameters
    ----------
    title, subtitle, footer
        Plain text.
    sections
        In reading order; those whose part is missing are greyed in the contents.
    """
    contents = "".join(
        f'<li><a href="#{s.key}"{"" if s.present else " class=missing"}>'
        f"{html.escape(s.title)}</a></li>"
        for s in sections
    )
    body = "".join(
        f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav><ol>{contents}</ol></nav>{body}"
        f"<footer>{html.escape(footer)}</footer></body></html>\n"
    )
