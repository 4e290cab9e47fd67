"""How an index searches: a `SearchSetting`, the one an index calibrated itself to (`Calibration`), and
`resolve_setting`, which turns a caller's options into the setting a search runs, once.

Light on purpose (no torch, no FAISS): the manifest, the server and the CLI read settings without
loading the build side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ragkit.errors import RagkitError
from ragkit.retrieval.fusion import (
    DEFAULT_METHOD,
    DEFAULT_WEIGHT,
    SEARCH_MODES,
    DocId,
    FusionMethod,
    Ranking,
    SearchMode,
    check_fusion,
    fuse_checked,
)

GENERATED, INVERSE_CLOZE = "generated", "inverse-cloze"  # how calibration's pseudo-queries are made


@dataclass(frozen=True)
class SearchSetting:
    """One way to search an index: `mode`, and for hybrid the fusion `method` and dense `weight`."""

    mode: SearchMode
    method: FusionMethod | None = None
    weight: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise RagkitError(f"unknown search `mode` {self.mode!r}: use one of {', '.join(SEARCH_MODES)}")
        if self.mode == "hybrid":
            if self.method is None or self.weight is None:
                raise RagkitError("a hybrid setting needs a fusion `method` and a dense `weight`")
            check_fusion(self.method, self.weight)

    def fuse(self, dense: Ranking[DocId], lexical: Ranking[DocId]) -> dict[DocId, float]:
        """One query's dense and lexical rankings fused as this hybrid setting says (checked once,
        when the setting was made)."""
        return fuse_checked(dense, lexical, str(self.method), float(self.weight or 0.0))

    @property
    def label(self) -> str:
        """ "dense", "bm25" or "<method> <weight>", as benchmarks/results/fusion.md names them."""
        return self.mode if self.mode != "hybrid" else f"{self.method} {self.weight:g}"

    def __str__(self) -> str:
        return self.mode if self.mode != "hybrid" else f"hybrid ({self.method}, dense weight {self.weight:g})"

    @classmethod
    def from_label(cls, label: str) -> SearchSetting:
        """Read back a setting's label ("dense", "bm25", "weighted 0.3", "rrf 0.2")."""
        if label in ("dense", "bm25"):
            return cls(label)  # type: ignore[arg-type]  # a str; the `in` above has checked it
        method, weight = label.split()
        return cls("hybrid", method, float(weight))  # type: ignore[arg-type]  # __post_init__ checks it


HYBRID_DEFAULT = SearchSetting("hybrid", DEFAULT_METHOD, DEFAULT_WEIGHT)
FALLBACK = HYBRID_DEFAULT


@dataclass
class Calibration:
    """The setting an index searches with by default, and the evidence it was chosen on."""

    setting: SearchSetting
    scores: dict[str, float]  # candidate label -> nDCG@10 of the sources on the pseudo-queries
    queries: int
    pool: int
    chunks: int = 0  # the index's size when calibrated: an update recalibrates once it has changed enough
    generation: int = 0
    method: str = INVERSE_CLOZE  # how the pseudo-queries were made (manifests before "generated": this)
    extra: dict = field(default_factory=dict)

    def reason(self) -> str:
        """One line for `ragkit query`: what was chosen, on what, and what it beat."""
        best = self.scores[self.setting.label]
        others = ", ".join(
            f"{label} {self.scores[label]:.3f}" for label in ("bm25", "dense") if label != self.setting.label
        )
        made = (
            "questions written for passages of this corpus"
            if self.method == GENERATED
            else "pseudo-queries drawn from this corpus"
        )
        note = f"; {self.extra['fallback']}" if "fallback" in self.extra else ""
        return f"calibrated on {self.queries} {made} (nDCG@10 {best:.3f}; {others}){note}"

    def to_json(self) -> dict:
        """The manifest's form: the setting as its label."""
        data = asdict(self)
        data["setting"] = self.setting.label
        return data

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        """Read back what `to_json` wrote."""
        return cls(**{**data, "setting": SearchSetting.from_label(data["setting"])})


def resolve_setting(
    calibration: Calibration | None,
    mode: str | None = None,
    method: str | None = None,
    weight: float | None = None,
) -> SearchSetting:
    """The setting a search with these options runs. What is given wins; the rest comes from the
    setting the index calibrated itself to, else from `FALLBACK` (chosen on dev splits). A `method` or
    `weight` without a `mode` means hybrid; hybrid without them takes the calibrated fusion if it is
    one, else hybrid's dev-chosen `HYBRID_DEFAULT`."""
    default = calibration.setting if calibration else FALLBACK
    if mode is None and method is None and weight is None:
        return default
    if mode is not None and mode != "hybrid":
        return SearchSetting(mode)  # type: ignore[arg-type]  # checked: an unknown mode is a one-line error
    base = default if default.mode == "hybrid" else HYBRID_DEFAULT
    return SearchSetting(
        "hybrid",
        method or base.method,  # type: ignore[arg-type]  # checked by SearchSetting
        base.weight if weight is None else weight,
    )
