"""InfoNCE over cosine similarities: the loss of SimCSE and of supervised contrastive training."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(queries: torch.Tensor, documents: torch.Tensor, scale: float, offset: int = 0) -> torch.Tensor:
    """Query i's positive is document `offset + i`; every other document is a negative.

    `scale` is the inverse temperature: 20 (SimCSE, temperature 0.05) or 50 (LLM2Vec supervised).
    `offset` places a rank's own queries inside documents gathered from every rank.
    """
    with torch.autocast(queries.device.type, enabled=False):  # logits x 50 need fp32
        scores = F.normalize(queries.float(), dim=-1) @ F.normalize(documents.float(), dim=-1).T
    labels = torch.arange(len(queries), device=queries.device) + offset
    return F.cross_entropy(scores * scale, labels)
