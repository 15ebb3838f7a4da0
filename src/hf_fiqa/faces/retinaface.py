"""RetinaFace (MobileNet-0.25 backbone) as a second face detector, in PyTorch.

``RetinaFaceDetector(weights)`` takes the state dict released with biubug6's
Pytorch_Retinaface / Face-Detector-1MB-with-landmark (``mobilenet0.25_Final.pth``, MIT) and
behaves like :class:`hf_fiqa.faces.YuNetDetector`: same options (working size, fallback),
same output (boxes, 5 landmarks in ArcFace order, scores, best first). It exists so that
results can be checked against a second, independently trained detector, and for users whose
photos YuNet handles poorly.

The network is rebuilt here from the published architecture of that release (module names
follow the checkpoint keys): MobileNetV1 x0.25 in three stages (strides 8, 16, 32), a 3-level
FPN with 64 channels, an SSH context module per level, and 1x1 heads for 2 anchors per cell
(class, box, landmarks); plain ReLU activations throughout. Anchors: sizes (10, 20), (32, 64),
(128, 256) at strides 8, 16, 32, centred in their cell; regressions decoded with variances
(0.1, 0.2). Input: BGR float minus the mean (104, 117, 123), no scaling. The checkpoint is
loaded with ``torch.load(weights_only=True)``. (Pytorch_Retinaface's own mobilenet0.25 file
shares the keys but was trained with LeakyReLU(0.1) and anchors twice as large; it would
load here without error and detect poorly, so only the 1MB release's file is supported.)

Two practical differences from YuNet, both measured on this project's photos:

* The model was trained on 300-px crops; faces much larger than its biggest anchor (256 px)
  come out as several partial boxes. The working size is therefore capped at 640 px
  (``max_side``), which is the release's own evaluation setting.
* PyTorch runs depthwise convolutions slowly on CPU: about 25 ms for a 320-px photo on one
  thread of this project's CI CPU, against YuNet's few ms. Prefer YuNet for bulk work.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .detection import DetectorWeightsNotFoundError, ScaledFaceDetector

_MIN_SIZES = ((10, 20), (32, 64), (128, 256))
_STEPS = (8, 16, 32)
_VARIANCES = (0.1, 0.2)
_BGR_MEAN = (104.0, 117.0, 123.0)
_NEG_SLOPE = 0.0


def _act() -> nn.Module:
    return nn.LeakyReLU(negative_slope=_NEG_SLOPE, inplace=True)


def _conv_bn(cin: int, cout: int, stride: int = 1, act: bool = True, k: int = 3) -> nn.Sequential:
    """Conv (no bias) + BN (+ activation), submodule indices as in the checkpoint."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(_act())
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + BN + act, then pointwise 1x1 + BN + act (MobileNetV1 block)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        _act(),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        _act(),
    )


class _MobileNetV1x025(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class _FPN(nn.Module):
    def __init__(self, channels: tuple[int, int, int] = (64, 128, 256), out: int = 64) -> None:
        super().__init__()
        self.output1 = _conv_bn(channels[0], out, k=1)
        self.output2 = _conv_bn(channels[1], out, k=1)
        self.output3 = _conv_bn(channels[2], out, k=1)
        self.merge1 = _conv_bn(out, out)
        self.merge2 = _conv_bn(out, out)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class _SSH(nn.Module):
    """Context module: parallel 3x3, "5x5" (two 3x3) and "7x7" (three 3x3) branches."""

    def __init__(self, cin: int = 64, out: int = 64) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(cin, out // 2, act=False)
        self.conv5X5_1 = _conv_bn(cin, out // 4)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, act=False)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.conv5X5_1(x)
        b7 = self.conv7x7_3(self.conv7X7_2(b5))
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(b5), b7], dim=1))


class _Head(nn.Module):
    def __init__(self, values: int, cin: int = 64, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(cin, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, A*V, H, W) -> (B, H*W*A, V): cell-major, anchor-minor, the order of the anchors.
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class RetinaFaceNet(nn.Module):
    """The RetinaFace-MobileNet0.25 network; ``forward`` gives (boxes, scores, landmarks) raw."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _MobileNetV1x025()
        self.fpn = _FPN()
        self.ssh1, self.ssh2, self.ssh3 = _SSH(), _SSH(), _SSH()
        self.ClassHead = nn.ModuleList([_Head(2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.fpn(self.body(x))
        feats = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
        boxes = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        scores = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1).softmax(dim=-1)[..., 1]
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return boxes, scores, landmarks


def _anchors(height: int, width: int) -> torch.Tensor:
    """(N, 4) anchors (cx, cy, w, h), normalised by the input size, in head output order."""
    out = []
    for sizes, step in zip(_MIN_SIZES, _STEPS):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        cy, cx = torch.meshgrid(
            (torch.arange(fh, dtype=torch.float32) + 0.5) * step / height,
            (torch.arange(fw, dtype=torch.float32) + 0.5) * step / width,
            indexing="ij",
        )
        per_size = [
            torch.stack([cx, cy, torch.full_like(cx, s / width), torch.full_like(cy, s / height)], dim=-1)
            for s in sizes
        ]
        out.append(torch.stack(per_size, dim=2).reshape(-1, 4))  # (fh, fw, anchors, 4)
    return torch.cat(out, dim=0)


class RetinaFaceDetector(ScaledFaceDetector):
    """RetinaFace-MobileNet0.25 on CPU or GPU; options as :class:`ScaledFaceDetector`.

    ``weights``: path of ``mobilenet0.25_Final.pth`` (a plain state dict, loaded with
    ``weights_only=True``; a ``module.`` prefix from DataParallel training is accepted).
    ``nms_threshold``: IoU for non-maximum suppression (0.4, the release's value).
    ``max_side`` defaults to 640 (see the module docstring). ``score_threshold`` defaults to
    0.8, not YuNet's 0.6: on random-noise images this model scores 5-8 px specks up to 0.71,
    while real faces in LFW / CelebA samples scored 0.94 or more. ``detect`` may be called from
    several threads: inference reads the network's weights only.
    """

    name = "retinaface"

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        score_threshold: float = 0.8,
        fallback: bool = True,
        fallback_threshold: float = 0.3,
        max_side: int = 640,
        min_side: int = 320,
        fallback_min_size: float = 32.0,
        nms_threshold: float = 0.4,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            score_threshold=score_threshold,
            fallback=fallback,
            fallback_threshold=fallback_threshold,
            max_side=max_side,
            min_side=min_side,
            fallback_min_size=fallback_min_size,
        )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DetectorWeightsNotFoundError(f"RetinaFace weights not found at {str(path)!r}")
        self.weights = path
        self.nms_threshold = float(nms_threshold)
        self.device = torch.device(device)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"cannot load RetinaFace weights {str(path)!r}: {exc}") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        self.net = RetinaFaceNet()
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{str(path)!r} is not a RetinaFace-MobileNet0.25 state dict: {exc}") from None
        self.net.eval().to(self.device)
        self._mean = torch.tensor(_BGR_MEAN, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def _detect_rgb(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        from torchvision.ops import nms

        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).to(self.device)  # RGB -> BGR
        x = x.permute(2, 0, 1)[None].float() - self._mean
        loc, scores, landm = (t[0] for t in self.net(x))
        keep = scores >= min_score
        if not keep.any():
            return np.zeros((0, 15))
        priors = _anchors(h, w).to(self.device)[keep]
        loc, scores, landm = loc[keep], scores[keep], landm[keep]
        var0, var1 = _VARIANCES
        centre = priors[:, :2] + loc[:, :2] * var0 * priors[:, 2:]
        size = priors[:, 2:] * torch.exp(loc[:, 2:] * var1)
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
        points = priors[:, None, :2] + landm.view(-1, 5, 2) * var0 * priors[:, None, 2:]
        scale = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        boxes = boxes * scale.repeat(2)
        points = points * scale
        kept = nms(boxes, scores, self.nms_threshold)
        rows = torch.cat([boxes[kept], points[kept].reshape(-1, 10), scores[kept, None]], dim=1)
        return rows.double().cpu().numpy()
