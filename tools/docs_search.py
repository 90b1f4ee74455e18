"""Keyword search (BM25) over the shipped markdown documents: policies, shipping, support, care."""

import re
from functools import lru_cache
from pathlib import Path

from rank_bm25 import BM25Okapi

from expressway.toolbox import read_only

DOCS_FOLDER = Path(__file__).parent / "data" / "docs"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def _tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _split_sections(path: Path) -> list[tuple[str, str]]:
    """(title, text) for each paragraph or list block of a markdown file."""
    text = path.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text else path.stem
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]
    return [(title, block) for block in blocks if not block.startswith("# ")]


@lru_cache(maxsize=4)
def _index(folder: Path) -> tuple[BM25Okapi, list[tuple[str, str]]]:
    # Only files directly inside the folder are indexed, so a search never reads outside it.
    sections = [
        section
        for path in sorted(folder.glob("*.md"))
        if path.is_file() and path.resolve().parent == folder.resolve()
        for section in _split_sections(path)
    ]
    return BM25Okapi([_tokenize(f"{title} {body}") for title, body in sections]), sections


def search_sections(query: str, folder: Path = DOCS_FOLDER, limit: int = 3) -> str:
    """The `limit` best-matching sections of the markdown files in `folder`, as text."""
    index, sections = _index(folder)
    scores = index.get_scores(_tokenize(query))
    ranked = sorted(range(len(sections)), key=lambda i: scores[i], reverse=True)
    hits = [sections[i] for i in ranked[:limit] if scores[i] > 0]
    if not hits:
        return f"No document matches {query!r}."
    return "\n\n".join(f"[{title}]\n{body}" for title, body in hits)


@read_only
def search_docs(query: str) -> str:
    """Search the shop's documents (returns, shipping, support hours, warranty, membership,
    product care) and return the best-matching passages."""
    return search_sections(query)
