"""Supervised losses: the generalized cross-entropy competitor."""
import pytest
import torch
import torch.nn.functional as F

from adele.losses import generalized_cross_entropy, supervised_loss


def test_gce_formula_ignore_pixels_and_its_limits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    labels = torch.randint(0, 4, (2, 5, 6), generator=g)
    labels[0, 0] = 255
    p = logits.softmax(1).gather(1, labels.clamp(0, 3).unsqueeze(1)).squeeze(1)
    valid = labels != 255
    expected = ((1 - p ** 0.7) / 0.7)[valid].mean()
    assert generalized_cross_entropy(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert supervised_loss(logits, labels, "gce").item() == pytest.approx(expected.item(), rel=1e-6)
    # q -> 0 is cross-entropy, q = 1 is the mean absolute error of p_y
    ce = F.cross_entropy(logits, labels, ignore_index=255)
    assert generalized_cross_entropy(logits, labels, q=1e-4).item() == pytest.approx(ce.item(), rel=1e-3)
    assert generalized_cross_entropy(logits, labels, q=1.0).item() == pytest.approx((1 - p)[valid].mean().item(), rel=1e-6)
    # bounded per pixel by 1/q, unlike cross-entropy: a confidently wrong pixel costs at most 1/q
    wrong = torch.full((1, 2, 1, 1), 0.0)
    wrong[0, 0] = 50.0
    assert generalized_cross_entropy(wrong, torch.ones(1, 1, 1, dtype=torch.long)).item() <= 1 / 0.7 + 1e-6
    with pytest.raises(ValueError, match="q"):
        generalized_cross_entropy(logits, labels, q=0.0)
    logits.requires_grad_()
    generalized_cross_entropy(logits, torch.full_like(labels, 255)).backward()  # all ignored: zero, differentiable
