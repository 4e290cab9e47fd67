"""LLM2Vec training: MNTP, unsupervised SimCSE and supervised contrastive stages with LoRA, and
contrastive training on synthetic queries for a corpus without labels."""

from ragkit.adapt.config import (
    PRESETS,
    MNTPConfig,
    SimCSEConfig,
    StageConfig,
    SupervisedConfig,
    SyntheticConfig,
)
from ragkit.adapt.pipeline import AdaptReport, adapt
from ragkit.adapt.registry import STAGE_TYPES, STAGES, stage_configs, training_stage

__all__ = [
    "PRESETS",
    "STAGES",
    "STAGE_TYPES",
    "AdaptReport",
    "MNTPConfig",
    "SimCSEConfig",
    "StageConfig",
    "SupervisedConfig",
    "SyntheticConfig",
    "adapt",
    "stage_configs",
    "training_stage",
]
