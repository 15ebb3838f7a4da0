"""Angular-margin classification heads for training face embedders: ArcFace and MagFace.

A head owns the per-identity class centres (``num_classes x embedding_size``), which are only
needed for training, so it lives outside the backbone and is passed to the backbone's
``forward(pixel_values, labels=..., margin_head=head)`` (or called directly on embeddings).

Both heads compare the L2-normalised embedding with L2-normalised class centres
(``cos theta``), add an angular margin to the target class (``cos(theta + m)``), scale by ``s``
and apply cross-entropy. MagFace makes ``m`` grow with the embedding's magnitude ``a`` and adds
a regulariser ``g(a)`` that rewards large magnitudes, so that ``a`` becomes a quality score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput


@dataclass
class MarginHeadOutput(ModelOutput):
    """What a margin head returns.

    Args:
        loss: total loss (``None`` without labels). For MagFace: ``loss_ce + lambda_g * loss_g``.
        logits: ``s * cos(theta)`` for every class, without margin: use these for accuracy.
        margin_logits: the logits cross-entropy saw (margin applied to the target class).
        loss_ce: the cross-entropy part.
        loss_g: MagFace only: mean of the magnitude regulariser ``g(a)`` (before ``lambda_g``).
        norms: MagFace only: the embedding magnitudes clamped to ``[l_a, u_a]``.
        margins: MagFace only: the per-sample margin ``m(a)``.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    margin_logits: torch.Tensor | None = None
    loss_ce: torch.Tensor | None = None
    loss_g: torch.Tensor | None = None
    norms: torch.Tensor | None = None
    margins: torch.Tensor | None = None


def _check_positive(name: str, value: float) -> float:
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class _CosineClassifier(nn.Module):
    """Class centres ``W`` (num_classes x D) and the cosine between embeddings and every centre."""

    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__()
        if embedding_size <= 0 or num_classes <= 1:
            raise ValueError(
                f"embedding_size must be positive and num_classes at least 2, got {embedding_size}, {num_classes}"
            )
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"embeddings must be (B, {self.embedding_size}), got {tuple(embeddings.shape)}")
        # Computed in float32 even under autocast: acos-style margins are unstable in half precision.
        cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        return cos.clamp(-1.0, 1.0)

    @staticmethod
    def _check_labels(labels: torch.Tensor, batch: int, num_classes: int) -> torch.Tensor:
        labels = labels.reshape(-1).long()
        if labels.numel() != batch:
            raise ValueError(f"expected {batch} labels, got {labels.numel()}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must be class indices in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
        return labels


def _cos_plus_margin(cos: torch.Tensor, margin: torch.Tensor, easy_margin: bool) -> torch.Tensor:
    """Target-class ``cos(theta + m)``, guarded where ``theta + m`` would pass ``pi``.

    Past ``theta + m > pi`` the raw ``cos(theta + m)`` rises again and would reward moving away
    from the class centre. By default (insightface) the target logit continues as
    ``cos theta - m sin m`` (= ``cos theta - sin(pi - m) m``) beyond ``theta = pi - m``, which keeps
    it decreasing in theta over [0, pi]. ``easy_margin`` (MagFace's choice) instead applies the
    margin only where ``cos theta > 0`` and leaves obtuse angles unpenalised (with a jump at
    ``theta = pi / 2``).
    """
    # clamp away from 0: d sqrt(x)/dx is infinite at 0, i.e. when cos theta is exactly +-1.
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
    cos_m = cos * torch.cos(margin) - sin * torch.sin(margin)
    if easy_margin:
        return torch.where(cos > 0, cos_m, cos)
    threshold = torch.cos(math.pi - margin)
    return torch.where(cos > threshold, cos_m, cos - torch.sin(math.pi - margin) * margin)


class ArcFaceHead(_CosineClassifier):
    """ArcFace additive angular margin (Deng et al., 2019): target logit ``s * cos(theta + m)``.

    Args:
        embedding_size: length of the backbone's embedding.
        num_classes: number of training identities.
        scale: ``s`` (64 in ArcFace; smaller, e.g. 32, for few identities).
        margin: ``m`` in radians (0.5 in ArcFace).
        easy_margin: apply the margin only where ``cos theta > 0`` instead of the default
            linear continuation past ``theta = pi - m``.
    """

    def __init__(
        self, embedding_size: int, num_classes: int, scale: float = 64.0, margin: float = 0.5, easy_margin: bool = False
    ):
        super().__init__(embedding_size, num_classes)
        self.scale = _check_positive("scale", scale)
        if not 0.0 <= float(margin) < math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2) radians, got {margin!r}")
        self.margin = float(margin)
        self.easy_margin = bool(easy_margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> MarginHeadOutput:
        cos = self.cosine(embeddings)
        logits = self.scale * cos
        if labels is None:
            return MarginHeadOutput(logits=logits)
        labels = self._check_labels(labels, cos.shape[0], self.num_classes)
        target_cos = cos.gather(1, labels[:, None])
        target_m = _cos_plus_margin(target_cos, torch.tensor(self.margin, device=cos.device), self.easy_margin)
        margin_logits = self.scale * cos.scatter(1, labels[:, None], target_m)
        loss = F.cross_entropy(margin_logits, labels)
        return MarginHeadOutput(loss=loss, logits=logits, margin_logits=margin_logits, loss_ce=loss)


def magface_min_lambda_g(l_a: float, u_a: float, l_m: float, u_m: float, scale: float = 64.0) -> float:
    """Smallest ``lambda_g`` for which MagFace's theory (convexity of the loss in ``a``) holds.

    With ``m(a)`` linear of slope ``k = (u_m - l_m) / (u_a - l_a)`` and ``g(a) = a / u_a^2 + 1 / a``
    the paper requires ``lambda_g >= s * k * u_a^2 * l_a^2 / (u_a^2 - l_a^2)``; the official
    trainer (IrvingMeng/MagFace ``run/trainer.py``) prints the same bound (it hard-codes s = 64
    and only warns).
    """
    k = (u_m - l_m) / (u_a - l_a)
    return scale * k * (u_a**2) * (l_a**2) / (u_a**2 - l_a**2)


class MagFaceHead(_CosineClassifier):
    """MagFace (Meng et al., 2021): magnitude-aware margin plus magnitude regulariser.

    The magnitude ``a = ||f||`` is clamped to ``[l_a, u_a]``; the target margin is
    ``m(a) = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m`` and the loss is
    ``CE + lambda_g * mean(g(a))`` with ``g(a) = a / u_a^2 + 1 / a``, which decreases on
    ``(0, u_a]`` and so pushes confident (easy) faces to larger magnitudes.

    Defaults are the paper's ``[l_a, u_a, l_m, u_m, lambda_g] = [10, 110, 0.45, 0.8, 35]``; for
    fine-tuning from an ArcFace model the paper uses ``[1, 51, 0.45, 1, 5]``. Construction fails
    with ``ValueError`` when ``lambda_g`` is below :func:`magface_min_lambda_g` (set
    ``check_lambda_g=False`` to experiment outside the theory; the official code only warns).
    ``easy_margin`` defaults to True like the official ``MagLinear``.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        l_a: float = 10.0,
        u_a: float = 110.0,
        l_m: float = 0.45,
        u_m: float = 0.8,
        lambda_g: float = 35.0,
        scale: float = 64.0,
        easy_margin: bool = True,
        check_lambda_g: bool = True,
    ):
        super().__init__(embedding_size, num_classes)
        self.l_a = _check_positive("l_a", l_a)
        self.u_a = _check_positive("u_a", u_a)
        if self.u_a <= self.l_a:
            raise ValueError(f"u_a must be greater than l_a, got l_a={l_a}, u_a={u_a}")
        if not 0.0 <= float(l_m) <= float(u_m) < math.pi / 2:
            raise ValueError(f"margins must satisfy 0 <= l_m <= u_m < pi/2, got l_m={l_m}, u_m={u_m}")
        self.l_m, self.u_m = float(l_m), float(u_m)
        self.lambda_g = float(lambda_g)
        if not math.isfinite(self.lambda_g) or self.lambda_g < 0:
            raise ValueError(f"lambda_g must be a non-negative number, got {lambda_g!r}")
        self.scale = _check_positive("scale", scale)
        self.easy_margin = bool(easy_margin)
        self.min_lambda_g = magface_min_lambda_g(self.l_a, self.u_a, self.l_m, self.u_m, self.scale)
        if check_lambda_g and self.lambda_g < self.min_lambda_g:
            raise ValueError(
                f"MagFace lambda_g={self.lambda_g:g} is below the feasible minimum {self.min_lambda_g:.4g} = "
                f"s*k*u_a^2*l_a^2/(u_a^2-l_a^2) with s={self.scale:g}, l_a={self.l_a:g}, u_a={self.u_a:g}, "
                f"l_m={self.l_m:g}, u_m={self.u_m:g} (k=(u_m-l_m)/(u_a-l_a)); raise lambda_g or pass check_lambda_g=False"
            )

    def margin(self, norms: torch.Tensor) -> torch.Tensor:
        """``m(a)``, linear in the (already clamped) magnitude."""
        return (self.u_m - self.l_m) / (self.u_a - self.l_a) * (norms - self.l_a) + self.l_m

    def regularizer(self, norms: torch.Tensor) -> torch.Tensor:
        """``g(a) = a / u_a^2 + 1 / a`` per sample."""
        return norms / self.u_a**2 + 1.0 / norms

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> MarginHeadOutput:
        cos = self.cosine(embeddings)
        logits = self.scale * cos
        norms = torch.linalg.vector_norm(embeddings.float(), dim=1).clamp(self.l_a, self.u_a)
        margins = self.margin(norms)
        if labels is None:
            return MarginHeadOutput(logits=logits, norms=norms, margins=margins)
        labels = self._check_labels(labels, cos.shape[0], self.num_classes)
        target_m = _cos_plus_margin(cos.gather(1, labels[:, None]), margins[:, None], self.easy_margin)
        margin_logits = self.scale * cos.scatter(1, labels[:, None], target_m)
        loss_ce = F.cross_entropy(margin_logits, labels)
        loss_g = self.regularizer(norms).mean()
        return MarginHeadOutput(
            loss=loss_ce + self.lambda_g * loss_g,
            logits=logits,
            margin_logits=margin_logits,
            loss_ce=loss_ce,
            loss_g=loss_g,
            norms=norms,
            margins=margins,
        )
