"""Face-recognition models (iResNet, MobileFaceNet), margin heads, converters, MagFace quality, ``hf-fiqa embed``."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hf_fiqa.commands import embed as embedding_commands
from hf_fiqa.embedding.embedder import RecognitionEmbedder
from hf_fiqa.faces.types import AlignedFace
from hf_fiqa.commands import convert as model_commands
from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.iresnet import IRESNET_DEPTHS, IResNetConfig, IResNetImageProcessor, IResNetModel
from hf_fiqa.models.iresnet.convert_iresnet import convert_iresnet_checkpoint, convert_state_dict, read_checkpoint
from hf_fiqa.models.margin_heads import ArcFaceHead, MagFaceHead, magface_min_lambda_g
from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel
from hf_fiqa.scorers import QualityScorer
from hf_fiqa.scorers.magface import MagFaceQualityScorer

TINY_IRESNET = dict(layers=[1, 1, 1, 1], stem_width=8, widths=[8, 8, 16, 16])
TINY_MBF = dict(blocks=[1, 1, 0], stem_width=8, stage_width=16, sep_width=32)


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm/PReLU non-trivial values so that layer mix-ups change the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g))
    return model.eval()


def tiny_iresnet(seed: int = 0, **overrides) -> IResNetModel:
    torch.manual_seed(seed)
    return randomize_norms(IResNetModel(IResNetConfig(**{**TINY_IRESNET, **overrides})), seed)


def tiny_mbf(seed: int = 0, **overrides) -> MobileFaceNetModel:
    torch.manual_seed(seed)
    return randomize_norms(MobileFaceNetModel(MobileFaceNetConfig(**{**TINY_MBF, **overrides})), seed)


def random_crops(n: int, size: int = 112, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


MAGFACE_PIXELS = dict(channel_order="BGR", image_mean=[0, 0, 0], image_std=[1, 1, 1])


def pixels(crops, **convention) -> torch.Tensor:
    """``pixel_values`` of uint8 crops through the recognizers' image processor (ArcFace convention by default)."""
    return IResNetImageProcessor(**convention)(list(crops), return_tensors="pt")["pixel_values"]


# --------------------------------------------------------------------------------------------
# An independent re-statement of insightface's arcface_torch iResNet (what its checkpoints
# contain), used as the reference the converted models must reproduce.


class RefIBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, eps):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=eps)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=eps)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=eps)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=eps))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        return out + identity


class RefIResNet(nn.Module):
    def __init__(self, layers, widths, stem=64, num_features=512, eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=eps)
        self.prelu = nn.PReLU(stem)
        inplanes = stem
        for i, (n, w) in enumerate(zip(layers, widths), start=1):
            blocks = [RefIBasicBlock(inplanes, w, 2, eps)] + [RefIBasicBlock(w, w, 1, eps) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = w
        self.bn2 = nn.BatchNorm2d(inplanes, eps=eps)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(inplanes * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=eps)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.features(self.fc(x))


def reference_model(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16), stem=8, eps=1e-5, seed=1) -> RefIResNet:
    torch.manual_seed(seed)
    return randomize_norms(RefIResNet(list(layers), list(widths), stem=stem, eps=eps), seed)


class MagFaceWrapper(nn.Module):
    """MagFace's SoftmaxBuilder layout: the backbone as ``features`` plus a class-centre ``fc``."""

    def __init__(self, backbone: nn.Module, num_classes: int = 10):
        super().__init__()
        self.features = backbone
        self.fc = nn.Module()
        self.fc.weight = nn.Parameter(torch.randn(backbone.fc.out_features, num_classes))


# ----------------------------------------------------------------------------- configs


def test_config_depths_and_validation():
    assert IResNetConfig().layers == list(IRESNET_DEPTHS[50])
    assert IResNetConfig(depth=100).layers == [3, 13, 30, 3]
    assert IResNetConfig(layers=[1, 1, 1, 1]).depth is None
    with pytest.raises(ValueError, match="layers"):
        IResNetConfig(depth=50, layers=[2, 2, 2, 2])
    with pytest.raises(ValueError, match="depth"):
        IResNetConfig(depth=42)
    with pytest.raises(ValueError, match="image_size"):
        IResNetConfig(image_size=100)
    with pytest.raises(ValueError, match="widths"):
        IResNetConfig(widths=[64, 128, 256])
    with pytest.raises(ValueError, match="channel_order"):
        IResNetImageProcessor(channel_order="rgb")
    with pytest.raises(ValueError, match="image_std"):
        IResNetImageProcessor(image_std=[0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="blocks"):
        MobileFaceNetConfig(blocks=[4, 6])
    with pytest.raises(ValueError, match="embedding_size"):
        MobileFaceNetConfig(embedding_size=0)


def test_config_json_round_trip(tmp_path):
    cfg = IResNetConfig(**TINY_IRESNET, bn_eps=2e-5)
    cfg.save_pretrained(tmp_path)
    processor = IResNetImageProcessor(**MAGFACE_PIXELS)
    processor.save_pretrained(tmp_path)
    back = IResNetConfig.from_pretrained(tmp_path)
    for name in ("layers", "widths", "stem_width", "bn_eps", "depth"):
        assert getattr(back, name) == getattr(cfg, name), name
    back_processor = IResNetImageProcessor.from_pretrained(tmp_path)
    for name in ("channel_order", "image_mean", "image_std", "image_size"):
        assert getattr(back_processor, name) == getattr(processor, name), name


def test_processor_for_a_model_config_uses_the_arcface_convention():
    for config_cls, extra in ((IResNetConfig, TINY_IRESNET), (MobileFaceNetConfig, TINY_MBF)):
        fresh = IResNetImageProcessor.from_model_config(config_cls(**extra))
        assert (fresh.channel_order, fresh.image_mean, fresh.image_std, fresh.image_size) == ("RGB", [0.5] * 3, [0.5] * 3, 112)


def test_published_depth_structure():
    model = IResNetModel(IResNetConfig(depth=18))
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert model.fc.in_features == 512 * 7 * 7 and model.fc.out_features == 512
    assert model.layer1[0].conv2.stride == (2, 2) and model.layer1[0].conv1.stride == (1, 1)


def test_mobilefacenet_full_size_forward():
    model = MobileFaceNetModel(MobileFaceNetConfig(embedding_size=128)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.9e6 < n_params < 1.1e6  # the paper's "0.99M parameters" design
    with torch.no_grad():
        out = model(torch.randn(2, 3, 112, 112))
    assert out.embeddings.shape == (2, 128) and out.norms.shape == (2,)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("factory", [tiny_iresnet, tiny_mbf])
def test_tiny_forward_shapes_and_norms(factory):
    model = factory()
    x = pixels(random_crops(3))
    with torch.no_grad():
        out = model(pixel_values=x)
    assert out.embeddings.shape == (3, 512) and out.norms.shape == (3,)
    torch.testing.assert_close(out.norms, out.embeddings.norm(dim=1))
    assert not torch.allclose(out.norms, torch.ones(3))  # raw, not L2-normalised
    assert out.loss is None and out.logits is None
    with torch.no_grad():
        emb, norms = model(pixel_values=x, return_dict=False)
    torch.testing.assert_close(emb, out.embeddings)
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.zeros(1, 3, 64, 64))


def _old_normalize_images(images: np.ndarray, image_mean, image_std, channel_order) -> torch.Tensor:
    """What the models' ``normalize_images`` computed before normalisation moved to the image processor."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().contiguous().div_(255.0)
    if channel_order == "BGR":
        x = x.flip(1)
    return (x - torch.tensor(image_mean).view(1, 3, 1, 1)) / torch.tensor(image_std).view(1, 3, 1, 1)


def test_image_processor_follows_convention():
    crops = random_crops(2)
    rgb = IResNetImageProcessor()
    expected = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    out = rgb(list(crops), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out, expected)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 112, 112)
    assert torch.equal(out, _old_normalize_images(crops, [0.5] * 3, [0.5] * 3, "RGB"))  # bit-identical
    bgr = IResNetImageProcessor(**MAGFACE_PIXELS)
    expected_bgr = torch.from_numpy(crops[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    out_bgr = bgr(list(crops), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out_bgr, expected_bgr)
    assert torch.equal(out_bgr, _old_normalize_images(crops, [0.0] * 3, [1.0] * 3, "BGR"))
    # One crop, a PIL image, or a (B, S, S, 3) array give the same pixels.
    assert torch.equal(rgb(crops[0], return_tensors="pt")["pixel_values"], out[:1])
    assert torch.equal(rgb(Image.fromarray(crops[1]), return_tensors="pt")["pixel_values"], out[1:])
    assert torch.equal(rgb(crops, return_tensors="pt")["pixel_values"], out)
    with pytest.raises(ValueError, match="uint8"):
        rgb(list(crops.astype(np.float32)))
    with pytest.raises(ValueError, match="shape"):
        rgb([np.zeros((112, 112, 4), np.uint8)])


def test_image_processor_resizes_like_opencv():
    """Crops of another size: cv2.INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    import cv2

    processor = IResNetImageProcessor()
    big, small, wide = random_crops(1, size=150)[0], random_crops(1, size=64)[0], random_crops(1, size=150)[0][:100]
    got = processor([big, small, wide], return_tensors="pt")["pixel_values"]
    expected = np.stack([
        cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA),
        cv2.resize(small, (112, 112), interpolation=cv2.INTER_LINEAR),
        cv2.resize(wide, (112, 112), interpolation=cv2.INTER_AREA),  # one side shrinks: area
    ])
    assert torch.equal(got, _old_normalize_images(expected, [0.5] * 3, [0.5] * 3, "RGB"))
    assert IResNetImageProcessor(image_size=64)(small, return_tensors="pt")["pixel_values"].shape == (1, 3, 64, 64)


def test_forward_with_margin_head_trains():
    model = tiny_iresnet().train()
    head = ArcFaceHead(512, num_classes=5, scale=16, margin=0.3)
    out = model(pixel_values=pixels(random_crops(4)), labels=torch.tensor([0, 1, 2, 3]), margin_head=head)
    assert out.logits.shape == (4, 5) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.conv1.weight.grad is not None and head.weight.grad is not None
    with pytest.raises(ValueError, match="margin_head"):
        model(pixel_values=torch.zeros(1, 3, 112, 112), labels=torch.tensor([0]))


# ----------------------------------------------------------------------------- margin heads


def test_arcface_logits_match_angle_arithmetic():
    torch.manual_seed(0)
    head = ArcFaceHead(16, num_classes=6, scale=64.0, margin=0.5)
    emb = torch.randn(8, 16) * 5
    labels = torch.arange(8) % 6
    out = head(emb, labels)
    cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).T
    theta = torch.arccos(cos.clamp(-1, 1).double())
    idx = torch.arange(8)
    target = theta[idx, labels]
    expected_target = torch.where(
        target + 0.5 <= math.pi,
        64 * torch.cos(target + 0.5),
        64 * (torch.cos(target) - 0.5 * math.sin(0.5)),
    )
    torch.testing.assert_close(out.margin_logits[idx, labels].double(), expected_target, atol=1e-3, rtol=1e-4)
    other = torch.ones_like(cos, dtype=torch.bool)
    other[idx, labels] = False
    torch.testing.assert_close(out.margin_logits[other], 64 * cos[other], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.logits, 64 * cos, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(out.loss) and out.loss > 0
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.margin_logits, labels))


@pytest.mark.parametrize("easy", [False, True])
def test_margin_target_past_pi_minus_m(easy):
    """cos(theta + m) turns back up for theta > pi - m; neither variant may follow it there."""
    head = ArcFaceHead(2, num_classes=2, scale=1.0, margin=0.5, easy_margin=easy)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = torch.linspace(0.01, math.pi - 0.01, 400)
    emb = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    with torch.no_grad():
        target = head(emb, torch.zeros(400, dtype=torch.long)).margin_logits[:, 0]
    if easy:  # margin only for acute angles, plain cosine beyond
        acute, obtuse = theta < math.pi / 2 - 0.01, theta > math.pi / 2 + 0.01
        torch.testing.assert_close(target[acute], torch.cos(theta[acute] + 0.5), atol=1e-5, rtol=0)
        torch.testing.assert_close(target[obtuse], torch.cos(theta[obtuse]), atol=1e-5, rtol=0)
    else:  # decreasing over the whole range, and below the plain cosine everywhere
        assert torch.all(target[1:] <= target[:-1] + 1e-6)
        assert torch.all(target < torch.cos(theta))


def test_magface_feasibility_check():
    # Paper defaults and the paper's fine-tuning set are both feasible.
    MagFaceHead(8, 4, 10, 110, 0.45, 0.8, 35)
    MagFaceHead(8, 4, 1, 51, 0.45, 1.0, 5)
    bound = magface_min_lambda_g(10, 110, 0.45, 0.8, 64)
    assert 0 < bound < 35
    MagFaceHead(8, 4, 10, 110, 0.45, 0.8, lambda_g=bound)
    with pytest.raises(ValueError) as err:
        MagFaceHead(8, 4, 10, 110, 0.45, 0.8, lambda_g=bound * 0.999)
    message = str(err.value)
    for fragment in ("lambda_g", "l_a=10", "u_a=110", "l_m=0.45", "u_m=0.8", "s=64"):
        assert fragment in message
    # The official trainer's argparse default lambda_g=20 violates its own bound with the default margins.
    with pytest.raises(ValueError, match="feasible minimum"):
        MagFaceHead(8, 4, lambda_g=20)
    MagFaceHead(8, 4, lambda_g=20, check_lambda_g=False)
    with pytest.raises(ValueError, match="u_a"):
        MagFaceHead(8, 4, l_a=50, u_a=40)
    # The bound grows with the margin slope.
    assert magface_min_lambda_g(10, 110, 0.45, 1.0) > bound


def test_magface_margin_and_regularizer_shape():
    head = MagFaceHead(8, 4)
    a = torch.linspace(head.l_a, head.u_a, 101)
    m = head.margin(a)
    torch.testing.assert_close(m[[0, -1]], torch.tensor([head.l_m, head.u_m]))
    assert torch.all(torch.diff(m) > 0)  # margin grows with magnitude
    g = head.regularizer(a)
    assert torch.all(torch.diff(g) < 0)  # g decreases on [l_a, u_a]: rewards larger magnitudes
    # Magnitudes outside [l_a, u_a] are clamped (as in the official code).
    emb = torch.zeros(2, 8)
    emb[0, 0], emb[1, 1] = 1.0, 500.0
    out = head(emb)
    torch.testing.assert_close(out.norms, torch.tensor([head.l_a, head.u_a]))


def test_magface_loss_composition_and_magnitude_growth():
    torch.manual_seed(0)
    head = MagFaceHead(16, num_classes=4, scale=64)
    directions = torch.nn.functional.normalize(torch.randn(12, 16), dim=1)
    emb = (directions * torch.linspace(15, 90, 12)[:, None]).requires_grad_(True)  # inside [l_a, u_a]
    labels = torch.arange(12) % 4
    out = head(emb, labels)
    torch.testing.assert_close(out.loss, out.loss_ce + head.lambda_g * out.loss_g)
    assert torch.isfinite(out.loss)
    # Gradient descent on the regulariser alone lengthens every embedding.
    (grad,) = torch.autograd.grad(out.loss_g, emb)
    stepped = emb.detach() - 50.0 * grad
    assert torch.all(stepped.norm(dim=1) > emb.detach().norm(dim=1))
    # Below l_a the magnitude is clamped, as in the official code: no regulariser gradient there.
    small = (directions[:2] * 5.0).requires_grad_(True)
    (grad_small,) = torch.autograd.grad(head(small, labels[:2]).loss_g, small)
    assert torch.count_nonzero(grad_small) == 0
    # Training embeddings + centres together lowers the loss.
    param = nn.Parameter(emb.detach().clone())
    opt = torch.optim.SGD([param, head.weight], lr=0.5)
    losses = []
    for _ in range(30):
        res = head(param, labels)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        losses.append(res.loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("params", [{}, dict(l_a=1, u_a=51, l_m=0.45, u_m=1.0, lambda_g=5)], ids=["paper", "finetune"])
def test_magface_optimal_magnitude_grows_with_closeness_to_centre(params):
    """MagFace's point: per sample, the loss-minimising magnitude increases with cos(theta) to the class centre."""
    head = MagFaceHead(16, 4, **params)
    with torch.no_grad():
        head.weight.copy_(torch.eye(16)[:4])  # centres e0..e3; e15 is orthogonal to all of them
    a = torch.linspace(head.l_a, head.u_a, 1001)
    labels = torch.zeros(len(a), dtype=torch.long)
    best = []
    for c in (0.3, 0.5, 0.7, 0.9):
        direction = torch.zeros(16)
        direction[0], direction[15] = c, math.sqrt(1 - c * c)
        with torch.no_grad():
            out = head(a[:, None] * direction[None], labels)
            per_sample = torch.nn.functional.cross_entropy(out.margin_logits, labels, reduction="none")
            total = per_sample + head.lambda_g * head.regularizer(out.norms)
        best.append(float(a[total.argmin()]))
    assert all(lo < hi for lo, hi in zip(best, best[1:])), best


def test_head_label_validation():
    head = ArcFaceHead(8, 3)
    with pytest.raises(ValueError, match="labels"):
        head(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="embeddings"):
        head(torch.randn(2, 7), torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- converters


def _inputs_for(processor) -> tuple[np.ndarray, torch.Tensor]:
    crops = random_crops(3, seed=5)
    return crops, processor(list(crops), return_tensors="pt")["pixel_values"]


def test_convert_arcface_torch_layout_reproduces_reference(tmp_path):
    ref = reference_model()
    path = tmp_path / "backbone.pth"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, path)  # DDP-saved variant
    conversion = convert_state_dict(read_checkpoint(path), layout="auto", source=str(path))
    model = conversion.model
    assert conversion.layout == "arcface_torch" and conversion.dropped_keys == []
    assert model.config.layers == [1, 2, 1, 1] and model.config.widths == [8, 8, 16, 16] and model.config.depth is None
    crops, pixels = _inputs_for(conversion.processor)
    # arcface_torch convention: RGB, (x/255 - 0.5)/0.5
    ref_in = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=pixels).embeddings, ref(ref_in), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prefix_style", ["dp", "ddp"])
def test_convert_magface_layout_round_trip(tmp_path, prefix_style):
    ref = reference_model(eps=2e-5, seed=3)
    wrapper = MagFaceWrapper(ref)
    sd = wrapper.state_dict()
    if prefix_style == "dp":  # DataParallel(SoftmaxBuilder): module.features.*, module.fc.weight
        sd = {"module." + k: v for k, v in sd.items()}
    else:  # model.features = DDP(features): features.module.*, fc.weight
        sd = {("features.module." + k[len("features."):] if k.startswith("features.") else k): v for k, v in sd.items()}
    src = tmp_path / "magface_epoch_00025.pth"
    torch.save({"epoch": 25, "arch": "iresnet-tiny", "state_dict": sd}, src)
    dst = tmp_path / "converted"
    converted = convert_iresnet_checkpoint(src, dst, layout="magface")
    conversion = convert_state_dict(read_checkpoint(src), layout="magface", source=str(src))
    assert [k.split(".")[-2:] for k in conversion.dropped_keys] == [["fc", "weight"]]
    from transformers import AutoImageProcessor, AutoModel

    import hf_fiqa

    hf_fiqa.register()  # in-process Auto classes for the converted folder
    cfg, processor = converted.config, AutoImageProcessor.from_pretrained(dst)
    assert isinstance(processor, IResNetImageProcessor)
    assert (processor.channel_order, processor.image_mean, processor.image_std, cfg.bn_eps) == ("BGR", [0.0] * 3, [1.0] * 3, 2e-5)
    loaded = AutoModel.from_pretrained(dst).eval()
    crops, pixels = _inputs_for(processor)
    # MagFace's gen_feat.py: cv2.imread (BGR), ToTensor (x/255), no mean/std.
    ref_in = torch.from_numpy(crops[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        got = loaded(pixel_values=pixels).embeddings
        torch.testing.assert_close(got, ref(ref_in), rtol=1e-5, atol=1e-5)
        assert torch.equal(got, converted(pixel_values=pixels).embeddings)


def test_convert_reports_every_mismatch_at_once(tmp_path):
    sd = dict(reference_model().state_dict())
    del sd["layer2.1.bn3.running_var"]
    sd["layer2.1.extra.weight"] = torch.zeros(3)
    sd["features.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as err:
        convert_state_dict(sd, layout="arcface_torch", source="bad.pth")
    exc = err.value
    assert exc.missing == ["layer2.1.bn3.running_var"]
    assert exc.unexpected == ["layer2.1.extra.weight"]
    assert [k for k, _, _ in exc.wrong_shape] == ["features.bias"]
    text = str(exc)
    assert "bad.pth" in text and "layer2.1.bn3.running_var" in text and "(7,)" in text and "(512,)" in text


def test_convert_depth_check_and_layout_errors(tmp_path):
    sd = reference_model(layers=(2, 2, 2, 2)).state_dict()
    assert convert_state_dict(sd).model.config.depth == 18
    with pytest.raises(ValueError, match="--depth 50"):
        convert_state_dict(sd, depth=50)
    with pytest.raises(ValueError, match="not a MagFace checkpoint"):
        convert_state_dict(sd, layout="magface")
    with pytest.raises(CheckpointError, match="fc.weight"):
        convert_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})


class _NotATensor:
    """A pickled object that torch.load(weights_only=True) must refuse to rebuild."""


def test_read_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pth")
    torch.save({"epoch": 1, "arch": "x"}, tmp_path / "nostate.pth")
    with pytest.raises(ValueError, match="state dict"):
        read_checkpoint(tmp_path / "nostate.pth")


def _convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    sub = parser.add_subparsers(dest="command", required=True)
    model_commands.register(sub)
    embedding_commands.register(sub)
    return parser


def test_convert_cli(tmp_path, capsys):
    src = tmp_path / "model.pt"
    torch.save(reference_model(layers=(2, 2, 2, 2)).state_dict(), src)
    args = _convert_parser().parse_args(["convert", "iresnet", str(src), str(tmp_path / "out"), "--depth", "18"])
    assert args.func(args) == 0
    assert "iResNet-18" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "modeling_iresnet.py").is_file()
    assert (tmp_path / "out" / "preprocessor_config.json").is_file()
    assert (tmp_path / "out" / "image_processing_iresnet.py").is_file()
    args = _convert_parser().parse_args(["convert", "iresnet", str(src), str(tmp_path / "out2"), "--depth", "34"])
    assert args.func(args) == 2
    assert "--depth 34" in capsys.readouterr().err


# ----------------------------------------------------------------------------- remote code


def test_remote_code_loads_in_fresh_process_without_hf_fiqa(tmp_path):
    crops = random_crops(2, seed=9)
    expected = {}
    conventions = {"iresnet": {}, "mbf": MAGFACE_PIXELS}
    for name, model in (("iresnet", tiny_iresnet(seed=4)), ("mbf", tiny_mbf(seed=5))):
        model.save_pretrained(tmp_path / name)
        IResNetImageProcessor(**conventions[name]).save_pretrained(tmp_path / name)
        with torch.no_grad():
            expected[name] = model(pixel_values=pixels(crops, **conventions[name])).embeddings.numpy()
    np.save(tmp_path / "crops.npy", crops)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, torch
        from transformers import AutoImageProcessor, AutoModel
        crops = np.load({str(tmp_path / 'crops.npy')!r})
        for name in ("iresnet", "mbf"):
            model = AutoModel.from_pretrained({str(tmp_path)!r} + "/" + name, trust_remote_code=True).eval()
            processor = AutoImageProcessor.from_pretrained({str(tmp_path)!r} + "/" + name, trust_remote_code=True)
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
            with torch.no_grad():
                emb = model(pixel_values=processor(list(crops), return_tensors="pt")["pixel_values"]).embeddings.numpy()
            np.save({str(tmp_path)!r} + "/" + name + "_fresh.npy", emb)
        assert not any(m == "hf_fiqa" or m.startswith("hf_fiqa.") for m in sys.modules), "hf_fiqa was imported"
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in expected:
        assert np.array_equal(np.load(tmp_path / f"{name}_fresh.npy"), expected[name]), name


# ----------------------------------------------------------------------------- embedder & quality


def test_embedder_batches_and_resizes():
    model, processor = tiny_mbf(), IResNetImageProcessor()
    crops = random_crops(5)
    a = RecognitionEmbedder(model, processor, device="cpu", batch_size=2).embed_crops(crops)
    b = RecognitionEmbedder(model, processor, device="cpu", batch_size=16).embed_crops(list(crops))
    assert a.shape == (5, 512) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    big = np.repeat(np.repeat(crops[0], 2, axis=0), 2, axis=1)  # 224x224 version of crop 0
    c = RecognitionEmbedder(model, processor, device="cpu").embed_crops([big])
    np.testing.assert_allclose(c[0], a[0], rtol=1e-4, atol=1e-4)
    flipped = RecognitionEmbedder(model, processor, device="cpu", flip=True).embed_crops(crops[:2])
    mirror = RecognitionEmbedder(model, processor, device="cpu").embed_crops(crops[:2, :, ::-1])
    np.testing.assert_allclose(flipped, a[:2] + mirror, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="crop 0"):
        RecognitionEmbedder(model, processor, device="cpu").embed_crops([np.zeros((112, 112), np.uint8)])


def test_magface_quality_scorer_is_embedding_magnitude(tmp_path):
    model = tiny_iresnet(seed=2)
    model.save_pretrained(tmp_path / "magface")
    IResNetImageProcessor(**MAGFACE_PIXELS).save_pretrained(tmp_path / "magface")
    scorer = MagFaceQualityScorer(tmp_path / "magface", device="cpu", batch_size=2)
    assert isinstance(scorer, QualityScorer) and scorer.crop_size == 112 and scorer.name == "magface"
    crops = random_crops(3, seed=1)
    scores = scorer.score([AlignedFace(crop=c) for c in crops])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    with torch.no_grad():
        expected = model(pixel_values=pixels(crops, **MAGFACE_PIXELS)).norms.double().numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert scorer.score([]).shape == (0,)
    with pytest.raises(ValueError, match="cannot load"):
        MagFaceQualityScorer(tmp_path / "nowhere", device="cpu")


# ----------------------------------------------------------------------------- embed CLI


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-mbf")
    tiny_mbf(seed=7).save_pretrained(path)
    IResNetImageProcessor().save_pretrained(path)
    return path


def make_identity_folder(root: Path, n_ids: int = 3, per_id: int = 3) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(n_ids):
        (root / f"id{i}").mkdir(parents=True)
        for j in range(per_id):
            size = 112 if (i + j) % 4 else 150  # some crops need resizing
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
            names.append(f"id{i}/{j}.png")
    (root / "id1" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return sorted(names + ["id1/broken.jpg"])


def run_cli(*argv: str) -> int:
    args = _convert_parser().parse_args(["embed", *argv, "--no-progress"])
    return args.func(args)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_embed_cli_aligned_identity_folder(tmp_path, tiny_model_dir, capsys):
    names = make_identity_folder(tmp_path / "faces")
    out = tmp_path / "out"
    assert run_cli(str(tmp_path / "faces"), "--model", str(tiny_model_dir), "--output", str(out), "--aligned",
                   "--batch-size", "4", "--shard-size", "4") == 0
    emb = np.load(out / "embeddings.npy")
    rows = read_rows(out / "rows.csv")
    assert emb.shape == (len(names), 512) and emb.dtype == np.float32
    assert [r["path"] for r in rows] == names and [int(r["row"]) for r in rows] == list(range(len(names)))
    assert [r["identity"] for r in rows] == [n.split("/")[0] for n in names]
    bad = names.index("id1/broken.jpg")
    assert rows[bad]["ok"] == "False" and "not a recognised image format" in rows[bad]["error"]
    assert np.isnan(emb[bad]).all()
    good = [i for i in range(len(names)) if i != bad]
    assert np.isfinite(emb[good]).all()
    np.testing.assert_allclose([float(rows[i]["norm"]) for i in good], np.linalg.norm(emb[good], axis=1), rtol=1e-5)
    # Embeddings equal a direct embedder call on the (resized) crops.
    embedder = RecognitionEmbedder(tiny_model_dir, device="cpu")
    direct = embedder.embed_crops([np.asarray(Image.open(tmp_path / "faces" / names[i]).convert("RGB")) for i in good])
    np.testing.assert_allclose(emb[good], direct, rtol=1e-4, atol=1e-4)
    assert not (out / ".embed_shards").exists()
    captured = capsys.readouterr()
    assert f"embedded {len(good)} of {len(names)}" in captured.out and "broken" not in captured.out
    # A second run on the same inputs (batching and sharding do not matter) finds the complete
    # result; a different input is refused.
    assert run_cli(str(tmp_path / "faces"), "--model", str(tiny_model_dir), "--output", str(out), "--aligned",
                   "--batch-size", "3", "--shard-size", "5") == 0
    assert "already holds the complete results" in capsys.readouterr().out
    (tmp_path / "faces" / "id0" / "0.png").rename(tmp_path / "faces" / "id0" / "renamed.png")
    assert run_cli(str(tmp_path / "faces"), "--model", str(tiny_model_dir), "--output", str(out), "--aligned") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_embed_cli_resumes_after_interruption(tmp_path, tiny_model_dir, monkeypatch):
    make_identity_folder(tmp_path / "faces", n_ids=4, per_id=3)  # 13 rows -> shards of 3: 5 shards
    # One batch per shard, so the n-th call of embed_crops is the n-th shard.
    common = [str(tmp_path / "faces"), "--model", str(tiny_model_dir), "--aligned", "--shard-size", "3", "--batch-size", "3"]
    assert run_cli(*common, "--output", str(tmp_path / "reference")) == 0

    calls = {"n": 0}
    original = RecognitionEmbedder.embed_crops

    def crash_on_third_shard(self, crops):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, crops)

    monkeypatch.setattr(RecognitionEmbedder, "embed_crops", crash_on_third_shard)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_cli(*common, "--output", str(out))
    shards = out / ".embed_shards"
    assert sorted(p.name for p in shards.glob("shard_*")) == [f"shard_00000{s}.{x}" for s in (0, 1) for x in ("csv", "npy")]
    assert json.loads((shards / "state.json").read_text())["shard_size"] == 3 and not (out / "embeddings.npy").exists()

    seen = []

    def counting(self, crops):
        seen.append(len(crops))
        return original(self, crops)

    monkeypatch.setattr(RecognitionEmbedder, "embed_crops", counting)
    assert run_cli(*common, "--output", str(out)) == 0
    # Only shards 2-4 (rows 6-12) ran again; row 6 is the unreadable file, so 6 crops were embedded.
    assert len(seen) == 3 and sum(seen) == 6
    np.testing.assert_array_equal(np.load(out / "embeddings.npy"), np.load(tmp_path / "reference" / "embeddings.npy"))
    assert read_rows(out / "rows.csv") == read_rows(tmp_path / "reference" / "rows.csv")


def test_embed_cli_csv_input_and_parquet(tmp_path, tiny_model_dir):
    pq = pytest.importorskip("pyarrow.parquet")
    names = make_identity_folder(tmp_path / "faces", n_ids=2, per_id=2)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "identity"])
        for n in names:
            writer.writerow([f"faces/{n}", f"person-{n.split('/')[0]}"])
        writer.writerow(["faces/missing.png", "ghost"])
    out = tmp_path / "out"
    assert run_cli(str(tmp_path / "labels.csv"), "--model", str(tiny_model_dir), "--output", str(out), "--aligned",
                   "--format", "parquet") == 0
    table = pq.read_table(out / "embeddings.parquet").to_pydict()
    assert table["path"] == [f"faces/{n}" for n in names] + ["faces/missing.png"]
    assert table["identity"][-1] == "ghost" and table["ok"][-1] is False and "no such file" in table["error"][-1]
    emb = np.array(table["embedding"][:-1], dtype=np.float32)
    assert emb.shape == (len(names), 512)
    ok = np.array(table["ok"][:-1])
    np.testing.assert_allclose(np.array(table["norm"][:-1], dtype=np.float64)[ok], np.linalg.norm(emb[ok], axis=1), rtol=1e-5)


def test_embed_cli_rejects_bad_input(tmp_path, tiny_model_dir, capsys):
    assert run_cli(str(tmp_path / "nope"), "--model", str(tiny_model_dir), "--output", str(tmp_path / "o"), "--aligned") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(str(tmp_path / "empty"), "--model", str(tiny_model_dir), "--output", str(tmp_path / "o"), "--aligned") == 2
    assert "no images found" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("file,who\na.png,x\n")
    assert run_cli(str(tmp_path / "bad.csv"), "--model", str(tiny_model_dir), "--output", str(tmp_path / "o"), "--aligned") == 2
    assert "'path' column" in capsys.readouterr().err


def test_embed_cli_detects_faces_in_real_photos(tmp_path, tiny_model_dir, shared, yunet_weights):
    rows = read_rows(shared / "data" / "celeba-wild-ids" / "labels.csv")[:3]
    with open(tmp_path / "subset.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "identity"])
        for r in rows:
            writer.writerow([str(shared / "data" / "celeba-wild-ids" / r["path"]), r["identity"]])
        writer.writerow([str(tmp_path / "corrupt.jpg"), "x"])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    assert run_cli(str(tmp_path / "subset.csv"), "--model", str(tiny_model_dir), "--output", str(out),
                   "--detector-weights", str(yunet_weights)) == 0
    got = read_rows(out / "rows.csv")
    assert [r["ok"] for r in got] == ["True", "True", "True", "False"]
    assert all(int(r["n_faces"]) >= 1 and 0 < float(r["det_score"]) <= 1 for r in got[:3])
    assert got[3]["error"] and got[3]["n_faces"] == ""
    emb = np.load(out / "embeddings.npy")
    assert np.isfinite(emb[:3]).all() and np.isnan(emb[3]).all()
