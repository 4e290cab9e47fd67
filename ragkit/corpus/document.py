"""A document, and the one text every encoder and BM25 sees for it (index, adapt, eval, serve)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    """One document: the unit that is chunked, embedded, updated and deleted by id."""

    doc_id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    def embedding_text(self) -> str:
        """What is embedded and ranked: `document_text(title, text)`."""
        return document_text(self.title, self.text)


def document_text(title: str, text: str) -> str:
    """The title on its own line above the text, unless the text already opens with it.

    A Markdown file whose title comes from its `# Title` line is not given the title twice. Every path
    that embeds or ranks documents calls this, so an index, `ragkit eval` and training agree.
    """
    title = title.strip()
    if not title or _first_line(text).lstrip("#").strip() == title:
        return text
    return f"{title}\n{text}"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""
