"""Losses on a teacher's scores: the student learns how the teacher ranks candidates (or, with the
cosine-matrix MSE, how it places any texts), not its vectors, so the two may differ in dimensions (and
for ranking, the teacher may be BM25)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_scores(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """(queries x documents) cosine similarities, in fp32 whatever the autocast."""
    with torch.autocast(queries.device.type, enabled=False):
        return F.normalize(queries.float(), dim=-1) @ F.normalize(documents.float(), dim=-1).T


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, scale: float) -> torch.Tensor:
    """KL(teacher || student) between the softmaxes of `scale` x each row's scores, averaged over rows.

    `student` and `teacher` are (queries x candidates) scores on the same scale (cosines, say); a
    candidate the teacher scores -inf is left out of both distributions. Zero when they are equal.
    """
    target = F.log_softmax(teacher.float() * scale, dim=-1)
    log_probs = F.log_softmax(student.float() * scale, dim=-1)
    keep = torch.isfinite(teacher)
    terms = torch.where(keep, target.exp() * (target - log_probs), torch.zeros_like(log_probs))
    return terms.sum(dim=-1).mean()


def margin_mse(
    student: torch.Tensor, teacher: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Margin-MSE (Hofstätter et al., 2020): the student's margin between each query's positive and each
    of its negatives should equal the teacher's. `positives` (queries,) and `negatives` (queries x n)
    are column indices into the (queries x candidates) score matrices."""
    rows = torch.arange(len(student), device=student.device)

    def margins(scores: torch.Tensor) -> torch.Tensor:
        return scores[rows, positives].unsqueeze(1) - scores[rows.unsqueeze(1), negatives]

    return F.mse_loss(margins(student.float()), margins(teacher.float()))


def similarity_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The mean squared difference between the student's and the teacher's cosine matrices of the same
    texts, off the diagonal (both are 1 there): the student learns the teacher's geometry, every pair of
    texts, with no map between their widths.

    `student` (texts x student dim) and `teacher` (texts x teacher dim) are vectors of the same rows;
    zero when the student's cosines equal the teacher's (a student that outputs the teacher's vectors,
    or any rotation or rescaling of them).
    """
    s, t = cosine_scores(student, student), cosine_scores(teacher, teacher)
    off_diagonal = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    return F.mse_loss(s[off_diagonal], t.to(s.device)[off_diagonal])


class DistillKLLoss(torch.nn.Module):
    """KL(teacher || student) between softmaxes over each query's candidates: the student learns the
    teacher's whole ranking of them, not only which one is positive.

    Args:
        scale: inverse temperature shared by both softmaxes (the scores are cosines, or BM25 scaled
            to them).

    References:
        Hinton et al., 2015, "Distilling the Knowledge in a Neural Network"; Hofstätter et al., 2021,
        "Efficiently Teaching an Effective Dense Retriever with Balanced Topic Aware Sampling".
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The mean KL over queries.

        Args:
            student: (queries, candidates) the student's cosine scores.
            teacher: (queries, candidates) the teacher's scores on the same scale; -inf leaves a
                candidate out of both distributions.

        Returns:
            A scalar loss, zero when the two score matrices are equal.
        """
        return distill_kl(student, teacher, self.scale)


class MarginMSELoss(torch.nn.Module):
    """The student's margin between a query's positive and each of its negatives should equal the
    teacher's: scale-free, so teacher and student scores need not share a scale.

    References:
        Hofstätter et al., 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
        Knowledge Distillation".
    """

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The mean squared difference of margins.

        Args:
            student: (queries, candidates) the student's scores.
            teacher: (queries, candidates) the teacher's scores.
            positives: (queries,) the column of each query's positive.
            negatives: (queries, n) the columns of each query's negatives.

        Returns:
            A scalar loss, zero for equal margins whatever each side's offset.
        """
        return margin_mse(student, teacher, positives, negatives)
