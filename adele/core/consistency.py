"""Multi-scale consistency regularization (ADELE section 3).

The same batch is forwarded at scales (1.0, 0.7, 1.5); logits are resized
back to the label size. With p_i = softmax(logits_i) and
q = mean_i p_i clamped to [eps, 1 - eps]:

    consistency = sum_i KL(p_i || q)        (a Jensen-Shannon form)
    total       = (sum_i CE_i + lam * consistency) / n_scales

KL(p || q) = sum_c p_c (log p_c - log q_c) with the unclamped p (0 log 0 = 0),
as torch's ``kl_div(log q, p)`` in the official code.

The consistency term is only used where the model is confident:
'image' (official): a whole image counts iff max over its non-ignored pixels
of max_c q >= rho (ignore-index pixels, e.g. crop padding, never switch an
image on); 'pixel': a pixel counts iff max_c q >= rho; 'none': everywhere.

Normalization (``normalize``): 'all' (official, ``torch.mean``) divides the
masked sum by all B*H*W pixels, so an image that is off contributes zeros;
'masked' divides by the number of pixels that are on (a few confident
pixels then carry the weight of a whole batch).
Logit scale (``temperature``). The official code takes the cross-entropy of
each scale on its logits times softmax(weights) = 1/3 (three scales, weights of
one), and the consistency term (and the correction) on the softmax of the raw
logits. A network trained that way has raw logits S = 3 times its calibrated
ones. Here the cross-entropy is taken on the raw logits (the network stays
calibrated: the 1/3 scaling made a measured run predict only background for
~40 epochs) and the thresholds are mapped instead: the consistency term reads
p_i = softmax(logits_i / T) with T = 1 / S (official), so rho = 0.8 means what
it means in the official code.

Forms (``form``): 'segthor' (official SegTHOR, above) and 'voc' (official VOC
``train.py``: total = sum_i CE_i + lam * consistency, no division by the number
of scales, and each CE averaged over all pixels, ignore-index padding included,
as ``torch.mean`` of an unreduced loss).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

MASKS = ("image", "pixel", "none")
NORMALIZE = ("all", "masked")
FORMS = ("segthor", "voc")


def _confidence_mask(q: Tensor, rho: float, mask: str, valid: Optional[Tensor] = None) -> Tensor:
    """q: (B, C, H, W), valid: (B, H, W) bool or None -> (B, H, W) float mask of pixels where the term is on."""
    conf = q.max(dim=1).values  # (B, H, W)
    if valid is not None:
        conf = conf * valid.to(conf.dtype)
    if mask == "pixel":
        return (conf >= rho).float()
    if mask == "image":
        on = conf.flatten(1).max(dim=1).values >= rho  # (B,)
        return on[:, None, None].float().expand_as(conf)
    return torch.ones_like(conf)


def consistency_loss(
    probs: Sequence[Tensor],
    rho: float = 0.8,
    mask: str = "image",
    eps: float = 1e-3,
    weights: Optional[Sequence[float]] = None,
    detach_target: bool = False,
    valid: Optional[Tensor] = None,
    normalize: str = "all",
) -> Tensor:
    """sum_i KL(p_i || q) per pixel, masked, then normalized; scalar Tensor.

    probs: list of S tensors (B, C, H, W), softmax probabilities of each scale.
    weights: (S,) non-negative weights for q (normalized to sum 1); default equal.
    detach_target: stop gradients through q (default False = JS form, as in the spec).
    valid: (B, H, W) bool, False at ignore-index pixels (they never switch the mask on).
    normalize: 'all' = masked sum / (B*H*W) (official), 'masked' = / number of pixels on.
    Returns 0 (still differentiable, zero gradient) when no pixel is on.
    """
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    if len(probs) == 0 or any(p.shape != probs[0].shape or p.dim() != 4 for p in probs):
        raise ValueError(f"probs must be a non-empty list of equal (B, C, H, W) tensors, "
                         f"got {[tuple(p.shape) for p in probs]}")
    P = torch.stack(list(probs))  # (S, B, C, H, W)
    w = torch.ones(len(probs)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.numel() != len(probs) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(probs)} non-negative numbers with a positive sum")
    w = (w / w.sum()).to(P)
    q = (w.view(-1, 1, 1, 1, 1) * P).sum(dim=0)  # (B, C, H, W)
    q = q.clamp(eps, 1.0 - eps)
    with torch.no_grad():
        on = _confidence_mask(q, rho, mask, valid)  # (B, H, W), from the clamped q as officially
    if detach_target:
        q = q.detach()
    # p log p with 0 log 0 = 0 and, as torch's kl_div, a zero gradient where p is exactly 0 (a softmax that underflowed:
    # xlogy's gradient there is log 0 = -inf, which turned a sharp term, e.g. at temperature 1/3, into NaN)
    p_log_p = torch.where(P > 0, P * P.clamp_min(torch.finfo(P.dtype).tiny).log(), torch.zeros_like(P))
    kl = (p_log_p - P * q.log().unsqueeze(0)).sum(dim=2)  # (S, B, H, W)
    per_pixel = kl.sum(dim=0)  # (B, H, W)
    total = (per_pixel * on).sum()
    if normalize == "all":
        return total / per_pixel.numel()
    return total / on.sum().clamp_min(1.0)


def multiscale_logits(
    model: torch.nn.Module,
    images: Tensor,
    scales: Sequence[float] = (1.0, 0.7, 1.5),
    out_size: Optional[tuple[int, int]] = None,
) -> list[Tensor]:
    """Forward ``images`` (B, C_in, H, W) at each scale; -> list of (B, C, *out_size) logits.

    Inputs are resized bilinearly (align_corners=False) to round(s*H, s*W);
    scale 1.0 uses the images as they are. out_size defaults to (H, W).
    """
    out_size = tuple(images.shape[-2:]) if out_size is None else tuple(out_size)
    h, w = images.shape[-2:]
    outputs = []
    for s in scales:
        x = images if s == 1.0 else F.interpolate(
            images, size=(max(1, round(h * s)), max(1, round(w * s))),
            mode="bilinear", align_corners=False)
        logits = model(x)
        if tuple(logits.shape[-2:]) != out_size:
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        outputs.append(logits)
    return outputs


def _cross_entropy(logits: Tensor, labels: Tensor, weight: Optional[Tensor], ignore_index: int,
                   over_all: bool = False) -> Tensor:
    """Mean CE over non-ignored pixels (weighted mean if ``weight``); 0 if none.
    over_all: the unweighted sum over all pixels, ignored ones included (official VOC)."""
    total = F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index, reduction="sum")
    if over_all:
        return total / labels.numel()
    valid = (labels != ignore_index).to(logits.dtype)
    if weight is not None:  # per-pixel weight of its target class, as in reduction="mean"
        valid = valid * weight.to(logits)[labels.clamp(0, logits.shape[1] - 1)]
    return total / valid.sum().clamp_min(1e-12)


def total_loss(ce: Tensor, consistency: Tensor, lam: float, n_scales: int, form: str = "segthor") -> Tensor:
    """ADELE's total loss from the supervised term summed over the scales and the consistency term:
    (ce + lam * consistency) / n_scales, or without the division for ``form="voc"`` (module doc)."""
    total = ce + lam * consistency
    return total if form == "voc" else total / n_scales


def multiscale_loss(
    logits_list: Sequence[Tensor],
    labels: Tensor,
    ce_weight: Optional[Tensor] = None,
    ignore_index: int = 255,
    lam: float = 1.0,
    rho: float = 0.8,
    mask: str = "image",
    eps: float = 1e-3,
    weights: Optional[Sequence[float]] = None,
    detach_target: bool = False,
    normalize: str = "all",
    temperature: float = 1.0,
    form: str = "segthor",
) -> dict[str, Tensor]:
    """CE at every scale plus consistency.

    logits_list: S tensors (B, C, H, W) at label size; labels: (B, H, W) int, ignore_index = ignore.
    temperature: the consistency term reads softmax(logits / temperature) (official: 1 / S, see
    the module doc); the CE always reads the raw logits. form: 'segthor' or 'voc' (module doc).
    Returns {'ce': sum_i CE_i, 'consistency': sum_i KL(p_i || q) (masked, see ``normalize``),
             'total': (ce + lam * consistency) / S ('voc': ce + lam * consistency)}; scalar Tensors.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    labels = labels.long()
    voc = form == "voc"
    ce = sum(_cross_entropy(lg, labels, ce_weight, ignore_index, over_all=voc) for lg in logits_list)
    probs = [(lg / temperature).softmax(dim=1) for lg in logits_list]
    cons = consistency_loss(probs, rho=rho, mask=mask, eps=eps, weights=weights,
                            detach_target=detach_target, valid=labels != ignore_index, normalize=normalize)
    return {"ce": ce, "consistency": cons, "total": total_loss(ce, cons, lam, len(logits_list), form)}
