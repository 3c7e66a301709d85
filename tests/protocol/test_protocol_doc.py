"""docs/PROTOCOL.md is the public contract: its error-code table lists every code
the server can answer with, each once, and its contents link to every section."""

from __future__ import annotations

import re
from pathlib import Path

from live.errors import STATUS_BY_CODE

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_error_code_table_lists_every_code_once() -> None:
    table = _section(PROTOCOL.read_text(), "7. Error codes")
    codes = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert sorted(codes) == sorted(STATUS_BY_CODE)
    assert len(codes) == len(set(codes))


def test_the_contents_link_to_sections() -> None:
    text = PROTOCOL.read_text()
    contents = text[text.index("Contents:") : text.index("\n\n", text.index("Contents:"))]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    sections = [_anchor(h) for h in re.findall(r"^## (\d+\. .+)$", text, flags=re.M)]
    assert links == sections  # every numbered section, once, in order
