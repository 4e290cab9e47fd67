"""LLM2Vec training: MNTP, unsupervised SimCSE and supervised contrastive stages with LoRA."""

from ragkit.adapt.config import (
    PRESETS,
    STAGES,
    MNTPConfig,
    SimCSEConfig,
    StageConfig,
    SupervisedConfig,
    stage_configs,
)
from ragkit.adapt.pipeline import AdaptReport, adapt

__all__ = [
    "PRESETS",
    "STAGES",
    "AdaptReport",
    "MNTPConfig",
    "SimCSEConfig",
    "StageConfig",
    "SupervisedConfig",
    "adapt",
    "stage_configs",
]
