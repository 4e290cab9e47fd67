"""`IndexSettings`: how an index stores its vectors, chosen at the first build and kept by updates."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ragkit.errors import RagkitError
from ragkit.index.manifest import IndexManifest
from ragkit.index.transform import Transform


@dataclass(frozen=True)
class IndexSettings:
    """The faiss spec, PCA or truncation, whitening and where IVF lists live.

    spec: a preset (flat, ivf, hnsw, ivfpq, sq8, sqfp16) or a faiss factory string; None: by size.
    pca / dim: reduce vectors to this many dims with PCA / by keeping the first ones.
    whiten: whiten with the PCA.
    on_disk: keep an IVF index's inverted lists in a memory-mapped file (`ragkit/index/ondisk.py`),
        for corpora whose vectors do not fit in memory; the spec defaults to "ivf".
    """

    spec: str | None = None
    pca: int | None = None
    dim: int | None = None
    whiten: bool = False
    on_disk: bool = False

    def check(self, d: int | None = None) -> None:
        """Refuse impossible settings before anything is embedded (`d` None: the encoder is not known yet)."""
        Transform.check_options(d, pca=self.pca, dim=self.dim, whiten=self.whiten)
        if self.on_disk and "ivf" not in (self.spec or "ivf").lower():
            raise RagkitError(
                f"`on_disk` keeps the inverted lists of an IVF index on disk; `spec` {self.spec!r} is "
                "not one: use ivf, ivfpq or an IVF factory string such as IVF4096,Flat"
            )

    @property
    def faiss_spec(self) -> str | None:
        """The spec handed to faiss: an on-disk index is IVF unless told which IVF."""
        return self.spec or ("ivf" if self.on_disk else None)

    @classmethod
    def recorded(cls, manifest: IndexManifest) -> IndexSettings:
        """The settings an index was built with, from its manifest."""
        transform = manifest.transform
        return cls(
            spec=manifest.index.spec,
            pca=transform.dim_out if transform.kind == "pca" else None,
            dim=transform.dim_out if transform.kind == "truncate" else None,
            whiten=transform.whiten,
            on_disk=manifest.index.on_disk,
        )

    def kept_for(self, index_dir: Path, manifest: IndexManifest) -> IndexSettings:
        """The existing index's settings, which an update keeps: a setting given (not left at its
        default) with another value than the index's is refused (a rebuild may change them)."""
        recorded = self.recorded(manifest)
        default = IndexSettings()
        for f in fields(self):
            value, was = getattr(self, f.name), getattr(recorded, f.name)
            if value != getattr(default, f.name) and value != was:
                built = f"without `{f.name}`" if was in (None, False) else f"with `{f.name}` {was!r}"
                raise RagkitError(
                    f"{index_dir} was built {built}, not `{f.name}` {value!r}; leave `{f.name}` out to "
                    "keep the index's setting, or use `rebuild` to change it"
                )
        return recorded
