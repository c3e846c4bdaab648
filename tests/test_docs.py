"""The user docs: a short README that routes, links that resolve, and no lab-notebook history."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
#: what belongs in git log, not in user docs
HISTORY = re.compile(r"\bissue \d+|\bsessions?\b|\b(first|second) machine\b|kept as (the|a) record", re.I)


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (links and words inside them are code, not prose)."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|<[^>]+>", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", _prose(path), flags=re.M)}


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; move details to docs/ and link them"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_hold_no_history(page):
    hits = [f"line {i}: {m.group(0)!r}" for i, line in enumerate(page.read_text().splitlines(), 1) for m in HISTORY.finditer(line)]
    assert not hits, f"{page.relative_to(ROOT)} reads like a lab notebook (git log holds the history): {hits}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A `title`, here\n\nsee [x](missing.md), [y](#a-title-here), [z](#nope)\n\n```\n[code](not-a-link.md)\n```\n")
    assert LINK.findall(_prose(page)) == ["missing.md", "#a-title-here", "#nope"]
    assert _anchors(page) == {"a-title-here"}
    assert HISTORY.search("measured in issue 25 on the second machine") and not HISTORY.search("a reissue 25 times")
