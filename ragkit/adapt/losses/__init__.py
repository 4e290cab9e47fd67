"""The training objectives of the adapt stages, one file each, as loss modules (`InfoNCELoss`, ...)
with their functional forms beside them (`info_nce`, ...), as torch's `nn` and `nn.functional`:
MNTP, SimCSE's attention dropout, InfoNCE (SimCSE and supervised), and distillation on a teacher's
scores."""

from ragkit.adapt.losses.contrastive import InfoNCELoss, info_nce
from ragkit.adapt.losses.distillation import (
    DistillKLLoss,
    MarginMSELoss,
    cosine_scores,
    distill_kl,
    margin_mse,
)
from ragkit.adapt.losses.mntp import MNTPLoss, mntp_loss
from ragkit.adapt.losses.simcse import set_attention_dropout

__all__ = [
    "DistillKLLoss",
    "InfoNCELoss",
    "MNTPLoss",
    "MarginMSELoss",
    "cosine_scores",
    "distill_kl",
    "info_nce",
    "margin_mse",
    "mntp_loss",
    "set_attention_dropout",
]
