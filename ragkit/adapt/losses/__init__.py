"""The training objectives of the adapt stages, one file each: MNTP's masking and loss, SimCSE's
attention dropout, InfoNCE (SimCSE and supervised), and the distillation losses on a teacher's scores."""

from ragkit.adapt.losses.contrastive import info_nce
from ragkit.adapt.losses.distillation import cosine_scores, distill_kl, margin_mse
from ragkit.adapt.losses.mntp import mntp_loss
from ragkit.adapt.losses.simcse import set_attention_dropout

__all__ = ["cosine_scores", "distill_kl", "info_nce", "margin_mse", "mntp_loss", "set_attention_dropout"]
