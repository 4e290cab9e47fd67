"""`BuildReport`: what a build, update or delete did, and its summary for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragkit.corpus import ReadStats
from ragkit.index.docstore import Counts
from ragkit.index.embedding import EmbedTotals
from ragkit.index.search_setting import Calibration
from ragkit.index.transform import TransformRecord


@dataclass
class BuildReport:
    """What a build, update or delete did: files compared, chunks embedded, the FAISS index written."""

    index_dir: Path
    added: int = 0  # files, compared with the previous index
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    resumed: int = 0  # files already embedded by an interrupted earlier run
    chunks_embedded: int = 0
    tokens_embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0  # the whole build
    reading: ReadStats = field(default_factory=ReadStats)  # files skipped, badly encoded, empty documents
    counts: Counts = field(default_factory=Counts)
    factory: str = ""
    transform: TransformRecord = field(default_factory=TransformRecord)
    faiss: str = ""  # which faiss build made the index
    generation: int = 0  # the index's generation after this change
    in_place: bool = False  # an update of an existing index (not a new build or a rebuild)
    vectors_added: int = 0  # FAISS vectors added and removed by an in-place update
    vectors_removed: int = 0
    retrained: str = ""  # why the FAISS index / PCA were trained (again); "" when they were kept
    repaired: str = ""  # what an update with nothing to embed put right (a missing BM25 part)
    bytes_per_vector: float = 0.0
    calibration: Calibration | None = None  # the default search setting, when (re)calibrated by this change
    default_search: str = ""  # a line on the default search setting after this change

    def add_embedded(self, totals: EmbedTotals) -> None:
        """Add one embed loop's totals."""
        self.chunks_embedded += totals.chunks
        self.tokens_embedded += totals.tokens
        self.embed_seconds += totals.seconds

    def summary(self) -> str:
        """A few lines for people: what is in the index, what changed, what was skipped and why."""
        c = self.counts
        lines = [
            f"index {self.index_dir}: {c.files} files, {c.documents} documents, {c.chunks} chunks "
            f"({self.factory}, {self.transform.dim_out} dims"
            + (
                f", {self.transform.kind} from {self.transform.dim_in}"
                if self.transform.kind != "none"
                else ""
            )
            + ")",
            f"files: {self.added} added, {self.updated} updated, {self.removed} removed, "
            f"{self.unchanged} unchanged"
            + (f" ({self.resumed} resumed from an interrupted build)" if self.resumed else ""),
        ]
        rate = self.tokens_embedded / self.embed_seconds if self.embed_seconds else 0.0
        lines.append(
            f"embedded {self.chunks_embedded} chunks, {self.tokens_embedded} tokens ({rate:.0f} tokens/s); "
            f"{self.seconds:.1f} s in all"
        )
        if self.in_place and not self.retrained:
            lines.append(
                f"updated in place (generation {self.generation}): {self.vectors_added} vectors added, "
                f"{self.vectors_removed} removed"
                if self.vectors_added or self.vectors_removed
                else f"repaired in place (generation {self.generation}): {self.repaired}"
                if self.repaired
                else "nothing changed: the index was left as it was"
            )
        elif self.in_place:
            lines.append(f"retrained the index (generation {self.generation}): {self.retrained}")
        reading = self.reading
        if reading.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(reading.skipped.items()))
            lines.append(f"skipped files: {reasons}")
        if reading.replaced_decoding:
            lines.append(
                f"{reading.replaced_decoding} files were not UTF-8: decoded with replacement characters"
            )
        if reading.empty_documents:
            lines.append(f"{reading.empty_documents} empty documents ignored")
        if self.default_search:
            lines.append(f"default search: {self.default_search}")
        lines.append(self.faiss)
        return "\n".join(lines)
