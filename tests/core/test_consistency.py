import pytest
import torch
import torch.nn.functional as F

from adele.core.consistency import consistency_loss, multiscale_logits, multiscale_loss


def logits_like(seed, shape=(2, 3, 5, 6), scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).requires_grad_()


def kl_sum(probs, eps=1e-3):
    """Reference: per-pixel sum_i KL(p_i || q), (B, H, W), with F.kl_div (target p unclamped)."""
    q = torch.stack(probs).mean(0).clamp(eps, 1 - eps)
    return sum(F.kl_div(q.log(), p, reduction="none").sum(1) for p in probs)


def official_consistency(logits, labels, rho=0.8):
    """The official multi-scale term, written from the paper's code description (not from ours):
    q = clamp(mean softmax, 1e-3, 1 - 1e-3); an image is on iff max over (C, H, W) of
    q * [label < 255] >= rho; per pixel sum over scales and classes of kl_div(log q, p) * on;
    then torch.mean over all B*H*W pixels."""
    probs = [F.softmax(lg, dim=1) for lg in logits]
    q = torch.clamp(torch.stack(probs).sum(0) / len(probs), 1e-3, 1 - 1e-3)
    keep = (labels < 255).float().unsqueeze(1)
    on = torch.amax(q * keep, dim=(-3, -2, -1), keepdim=True).ge(rho).float()
    per_scale = [torch.sum(F.kl_div(q.log(), p, reduction="none") * on, dim=1) for p in probs]
    return torch.mean(sum(per_scale))


def test_near_zero_when_all_scales_agree():
    # q is clamped to [1e-3, 1 - 1e-3] while p is not (as officially), so agreement gives |loss| << 1e-3
    p = logits_like(0).softmax(1)
    assert abs(consistency_loss([p, p, p], mask="none").item()) < 1e-3
    p = logits_like(0, scale=0.5).softmax(1)  # no probability near 0 or 1: exactly zero
    assert consistency_loss([p, p, p], mask="none").item() == pytest.approx(0.0, abs=1e-7)


def test_matches_the_official_formula_with_image_mask_and_ignore_pixels():
    shape = (5, 3, 6, 7)
    confident = [logits_like(s, shape, scale=6.0) for s in range(3)]
    logits = [lg.detach().clone() for lg in confident]
    for lg in logits:  # images 1..4 near uniform: only image 0 is on
        lg[1:] *= 0.01
    labels = torch.randint(0, 3, (5, 6, 7), generator=torch.Generator().manual_seed(3))
    labels[0, :2] = 255
    ours = multiscale_loss(logits, labels, rho=0.8, mask="image")["consistency"]
    ref = official_consistency(logits, labels, rho=0.8)
    assert ref.item() > 0
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4)


def test_official_normalization_is_over_all_pixels_not_the_masked_ones():
    # 1 of 5 images confident: 'all' (official torch.mean) = 1/5 of 'masked'
    logits = [logits_like(s, (5, 3, 4, 4), scale=6.0).detach() for s in range(3)]
    for lg in logits:
        lg[1:] *= 0.01
    probs = [lg.softmax(1) for lg in logits]
    full = consistency_loss(probs, rho=0.8, mask="image", normalize="all")
    masked = consistency_loss(probs, rho=0.8, mask="image", normalize="masked")
    assert full.item() > 0
    assert full.item() == pytest.approx(masked.item() / 5, rel=1e-5)
    assert consistency_loss(probs, mask="image").item() == pytest.approx(full.item())  # the default
    with pytest.raises(ValueError, match="normalize"):
        consistency_loss(probs, normalize="bogus")


def test_ignore_pixels_never_switch_an_image_on():
    logits = [logits_like(s, (1, 3, 4, 4), scale=0.01).detach() for s in range(3)]
    for lg in logits:
        lg[0, 0, 0, 0] = 20.0  # one very confident pixel ...
    probs = [lg.softmax(1) for lg in logits]
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    assert consistency_loss(probs, rho=0.8, mask="image", valid=valid).item() != 0.0
    valid[0, 0, 0] = False  # ... that is an ignore (padding) pixel
    assert consistency_loss(probs, rho=0.8, mask="image", valid=valid).item() == 0.0


def test_positive_when_scales_disagree_and_matches_reference():
    probs = [logits_like(s).softmax(1) for s in range(3)]
    loss = consistency_loss(probs, mask="none")
    assert loss.item() > 0
    assert loss.item() == pytest.approx(kl_sum(probs).mean().item(), rel=1e-5)


def test_gradient_reaches_every_scale():
    logits = [logits_like(s) for s in range(3)]
    consistency_loss([lg.softmax(1) for lg in logits], mask="none").backward()
    assert all(lg.grad is not None and lg.grad.abs().sum() > 0 for lg in logits)


def test_detach_target_gives_same_value():
    probs = [logits_like(s).softmax(1) for s in range(3)]
    a = consistency_loss(probs, mask="none")
    b = consistency_loss(probs, mask="none", detach_target=True)
    assert a.item() == pytest.approx(b.item())


def test_weights_change_the_target():
    probs = [logits_like(s).softmax(1) for s in range(2)]
    equal = consistency_loss(probs, mask="none")
    assert consistency_loss(probs, mask="none", weights=[1, 1]).item() == pytest.approx(equal.item())
    assert consistency_loss(probs, mask="none", weights=[1, 0]).item() != pytest.approx(equal.item())
    with pytest.raises(ValueError, match="weights"):
        consistency_loss(probs, weights=[1, 1, 1])


def test_image_mask_ignores_unconfident_images():
    confident = [logits_like(s, (1, 3, 4, 4), scale=6.0) for s in range(3)]
    flat = [logits_like(10 + s, (1, 3, 4, 4), scale=0.05) for s in range(3)]  # max q ~ 1/3
    logits = [torch.cat([c, f]).detach().requires_grad_() for c, f in zip(confident, flat)]
    probs = [lg.softmax(1) for lg in logits]
    loss = consistency_loss(probs, rho=0.8, mask="image")
    alone = consistency_loss([p[:1] for p in probs], rho=0.8, mask="image")
    assert loss.item() == pytest.approx(alone.item() / 2) and loss.item() > 0  # mean over both images' pixels
    loss.backward()
    assert all(lg.grad[1].abs().sum() == 0 and lg.grad[0].abs().sum() > 0 for lg in logits)


def test_pixel_mask_ignores_unconfident_pixels():
    logits = [logits_like(s, (1, 3, 4, 4), scale=6.0).detach() for s in range(3)]
    for lg in logits:
        lg[..., 0, :] = 0.01 * lg[..., 0, :]  # first row: near uniform, max q < 0.8
    logits = [lg.requires_grad_() for lg in logits]
    probs = [lg.softmax(1) for lg in logits]
    q_max = torch.stack(probs).mean(0).max(1).values
    on = q_max >= 0.8
    assert not on[..., 0, :].any() and on.any()
    loss = consistency_loss(probs, rho=0.8, mask="pixel", normalize="masked")
    assert loss.item() == pytest.approx(kl_sum(probs)[on].mean().item(), rel=1e-3)
    full = consistency_loss(probs, rho=0.8, mask="pixel")
    assert full.item() == pytest.approx((kl_sum(probs) * on).mean().item(), rel=1e-3)
    loss.backward()
    assert all(lg.grad[..., 0, :].abs().sum() == 0 for lg in logits)


def test_empty_mask_is_zero_and_differentiable():
    logits = [logits_like(s, scale=0.01) for s in range(3)]
    loss = consistency_loss([lg.softmax(1) for lg in logits], rho=0.9, mask="image")
    loss.backward()
    assert loss.item() == 0.0 and not torch.isnan(loss)
    assert all(torch.isfinite(lg.grad).all() for lg in logits)


def test_invalid_arguments():
    p = logits_like(0).softmax(1)
    with pytest.raises(ValueError, match="mask"):
        consistency_loss([p], mask="bogus")
    with pytest.raises(ValueError, match="equal"):
        consistency_loss([p, p[:, :, :3]])


def test_total_is_ce_sum_plus_lambda_consistency_over_scales():
    logits = [logits_like(s, scale=4.0) for s in range(3)]
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 3, (2, 5, 6), generator=g)
    labels[0, 0, :3] = 255
    out = multiscale_loss(logits, labels, lam=0.5, rho=0.0, mask="image")
    ce = sum(F.cross_entropy(lg, labels, ignore_index=255) for lg in logits)  # raw logits, no temperature
    cons = consistency_loss([lg.softmax(1) for lg in logits], rho=0.0, valid=labels != 255)
    assert out["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out["consistency"].item() == pytest.approx(cons.item(), rel=1e-6)
    assert out["total"].item() == pytest.approx((ce + 0.5 * cons).item() / 3, rel=1e-6)
    out["total"].backward()
    assert all(lg.grad.abs().sum() > 0 for lg in logits)


def test_weighted_ce_matches_torch_mean_and_all_ignored_is_zero():
    logits = [logits_like(s) for s in range(2)]
    labels = torch.randint(0, 3, (2, 5, 6), generator=torch.Generator().manual_seed(0))
    labels[1] = 255
    w = torch.tensor([0.2, 1.0, 3.0])
    out = multiscale_loss(logits, labels, ce_weight=w)
    ref = sum(F.cross_entropy(lg, labels, weight=w, ignore_index=255) for lg in logits)
    assert out["ce"].item() == pytest.approx(ref.item(), rel=1e-6)
    empty = multiscale_loss(logits, torch.full_like(labels, 255))
    assert empty["ce"].item() == 0.0 and torch.isfinite(empty["total"])


class SizeRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)[..., ::2, ::2]  # output stride 2, like a real network


def test_multiscale_logits_shapes_and_identity_scale():
    torch.manual_seed(0)
    model = SizeRecorder()
    images = torch.randn(2, 1, 20, 30)
    outs = multiscale_logits(model, images, scales=(1.0, 0.7, 1.5))
    assert model.sizes == [(20, 30), (14, 21), (30, 45)]
    assert all(o.shape == (2, 4, 20, 30) for o in outs)
    direct = F.interpolate(model(images), size=(20, 30), mode="bilinear", align_corners=False)
    assert torch.equal(outs[0], direct)
    outs = multiscale_logits(model, images, scales=(1.0,), out_size=(10, 15))
    assert outs[0].shape == (2, 4, 10, 15)


def test_official_logit_scale_is_mapped_exactly():
    """The official network's raw logits are 3x ours (its CE reads logits x softmax(1,1,1) = 1/3, its
    consistency term the softmax of the raw logits): temperature 1/3 on our logits is the same loss."""
    z = [logits_like(s, scale=1.5) for s in range(3)]
    labels = torch.randint(0, 3, (2, 5, 6), generator=torch.Generator().manual_seed(7))
    ours = multiscale_loss(z, labels, rho=0.8, mask="image", temperature=1 / 3)["total"]
    raw = [3 * lg for lg in z]  # the official network's logits
    ce = sum(F.cross_entropy(lg * (1 / 3), labels, reduction="none").mean() for lg in raw)
    official = (ce + official_consistency(raw, labels, rho=0.8)) / 3
    assert official_consistency(raw, labels).item() > 0
    assert ours.item() == pytest.approx(official.item(), rel=1e-5)
    g_ours = torch.autograd.grad(ours, z)
    g_official = torch.autograd.grad(official, z)
    for a, b in zip(g_ours, g_official):
        assert torch.allclose(a, b, atol=1e-6)
    # on the raw softmax, rho switches images on that the calibrated softmax leaves off
    assert multiscale_loss(z, labels, rho=0.8, temperature=1.0)["consistency"].item() != pytest.approx(
        multiscale_loss(z, labels, rho=0.8, temperature=1 / 3)["consistency"].item())


def test_voc_form_sums_without_dividing_and_averages_ce_over_all_pixels():
    logits = [logits_like(s, scale=2.0) for s in range(3)]
    labels = torch.randint(0, 3, (2, 5, 6), generator=torch.Generator().manual_seed(8))
    labels[:, :2] = 255  # crop padding
    out = multiscale_loss(logits, labels, lam=0.7, rho=0.0, form="voc")
    ce = sum(F.cross_entropy(lg, labels, ignore_index=255, reduction="none").mean() for lg in logits)  # official torch.mean
    assert out["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out["total"].item() == pytest.approx((ce + 0.7 * out["consistency"]).item(), rel=1e-6)
    seg = multiscale_loss(logits, labels, lam=0.7, rho=0.0, form="segthor")
    assert seg["ce"].item() > out["ce"].item()  # over the valid pixels only
    with pytest.raises(ValueError, match="form"):
        multiscale_loss(logits, labels, form="paper")


def test_gradient_stays_finite_where_a_probability_underflows_to_zero():
    """A softmax that underflows to exactly 0 in float32 (sharp logits, temperature 1/3) must not give a NaN gradient
    (xlogy's and torch's kl_div's do); the gradient is the limit computed in float64, where nothing underflows."""
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = 60.0  # at temperature 1/3: exp(-180) underflows to 0 in float32
    z = [logits.clone().requires_grad_() for _ in range(3)]
    probs = [(lg / (1 / 3)).softmax(1) for lg in z]
    assert (probs[0] == 0).any()
    ours = consistency_loss(probs, rho=0.0, mask="none")
    grads = torch.autograd.grad(ours, z)
    assert all(torch.isfinite(g).all() for g in grads)
    z2 = [logits.double().clone().requires_grad_() for _ in range(3)]
    probs2 = [(lg / (1 / 3)).softmax(1) for lg in z2]
    assert (probs2[0] > 0).all()
    ref = consistency_loss(probs2, rho=0.0, mask="none")
    for a, b in zip(grads, torch.autograd.grad(ref, z2)):
        assert torch.allclose(a.double(), b, atol=1e-6)
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
