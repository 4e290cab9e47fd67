"""InfoNCE: the positive is the diagonal (shifted by a rank's offset), similarity is cosine."""

from __future__ import annotations

import math

import pytest
import torch

from ragkit.adapt.losses.contrastive import info_nce


def test_matching_pairs_give_a_low_loss_and_shuffled_ones_a_high_loss():
    q = torch.eye(4)
    assert info_nce(q, q.clone(), scale=20).item() < 1e-6
    assert info_nce(q, q[[1, 2, 3, 0]], scale=20).item() > 10


def test_equal_scores_give_log_n_and_scale_is_the_inverse_temperature():
    q = torch.ones(3, 2)
    assert info_nce(q, q, scale=20).item() == pytest.approx(math.log(3))
    q, d = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = -math.log(math.exp(50) / (math.exp(50) + math.exp(0)))
    assert info_nce(q, d, scale=50).item() == pytest.approx(expected, abs=1e-6)


def test_vectors_are_compared_by_cosine_not_length():
    q = torch.randn(5, 8)
    d = torch.randn(7, 8)
    assert info_nce(q, d, 20).item() == pytest.approx(info_nce(3 * q, 0.1 * d, 20).item(), abs=1e-5)


def test_offset_points_each_query_at_its_own_rank_s_documents():
    d = torch.eye(6)
    q = d[3:5]  # rank 1 of 3, two queries each
    assert info_nce(q, d, 20, offset=3).item() < 1e-6
    assert info_nce(q, d, 20, offset=0).item() > 10


def test_the_loss_modules_are_their_functions_with_the_settings_kept():
    from ragkit.adapt.losses import DistillKLLoss, InfoNCELoss, MarginMSELoss, distill_kl, margin_mse

    torch.manual_seed(0)
    q, d = torch.randn(4, 8), torch.randn(6, 8)
    assert InfoNCELoss(scale=20)(q, d, offset=2).item() == info_nce(q, d, 20, offset=2).item()
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    assert DistillKLLoss(scale=20)(student, teacher).item() == distill_kl(student, teacher, 20).item()
    positives, negatives = torch.zeros(4, dtype=torch.long), torch.tensor([[1, 2]] * 4)
    assert MarginMSELoss()(student, teacher, positives, negatives).item() == pytest.approx(
        margin_mse(student, teacher, positives, negatives).item()
    )
