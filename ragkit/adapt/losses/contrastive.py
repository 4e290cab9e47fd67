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


class InfoNCELoss(torch.nn.Module):
    """In-batch contrastive loss: each query against its positive and every other document.

    The loss of the SimCSE stage (a text and its second dropout pass) and of the supervised stage
    (a query, its positive and hard negatives, with every other query's documents as negatives).

    Args:
        scale: inverse temperature of the softmax over cosine similarities: 20 for SimCSE
            (temperature 0.05), 50 for LLM2Vec's supervised stage.

    References:
        van den Oord et al., 2018, "Representation Learning with Contrastive Predictive Coding";
        Gao et al., 2021, "SimCSE"; BehnamGhader et al., 2024, "LLM2Vec".
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, queries: torch.Tensor, documents: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """The mean cross-entropy of each query's positive among all documents.

        Args:
            queries: (n, d) query vectors (not necessarily normalised).
            documents: (m, d) document vectors, m >= offset + n; query i's positive is row `offset + i`.
            offset: where this process's positives start among documents gathered from every process.

        Returns:
            A scalar loss in fp32 (computed outside autocast: scaled logits need it).
        """
        return info_nce(queries, documents, self.scale, offset)
