"""Tasks over face crops held in memory as uint8 arrays: what the SDD-FIQA recipe trains its quality network on.

- :class:`EmbeddingDistillationTask`: MANIQA learns to reproduce a recognizer's embedding of the same crop: cosine
  loss between the recognizer's unit embedding and a linear probe on the mean of MANIQA's last-stage tokens
  (``forward_head(..., pre_logits=True)``), plus a penalty keeping those tokens near unit RMS;
- :class:`PseudoLabelTask`: MANIQA regresses pseudo-labels (the model's own loss, SmoothL1 on labels scaled to
  [0, 1] by ``config.label_range``). Given cached ``backbone_features`` instead of crops (a frozen backbone's
  maps, computed once by :func:`hf_fiqa.recipes.quality_net.trunk_pass`), only the head above the backbone runs and learns, so an
  epoch costs a small fraction of one through the backbone; the flip then mirrors the maps. Given also the cached
  full-size input of the trunk's last stage (``stage_inputs``), that stage learns with the head
  (:class:`TunedLastStage`): "last stage tuned" for about twice the cost of the head alone.

Both train on every row of ``rows`` (indices into the arrays) with a horizontal flip per image, drawn per batch, and
an epoch order that is a permutation from ``(seed, epoch)`` cut into full batches, each batch's rows sorted (so a
batch reads the arrays in order). Neither has a validation set: the loop only trains and checkpoints them.

- :class:`PairFailureTask`: the pseudo-label fit on cached features plus genuine comparisons: each face of a batch
  meets one of its genuine pairs, and the pair's rejections by the recognizers, predicted from the softmin of the
  two faces' scores (:class:`PairLink`), add their log-likelihood to the loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .tasks import Task

# The cosine loss ignores the scale of the tokens, which then drifts (to RMS ~3,000 in one run); a fresh quality
# head on such features starts with scores far outside [0, 1] and can die behind its ReLU. A penalty on log(RMS)
# keeps the distilled tokens near unit scale.
SCALE_WEIGHT = 0.1


def uint8_pixels(batch: np.ndarray, flip: np.ndarray | None = None) -> torch.Tensor:
    """uint8 (B, S, S, 3) -> MANIQA's input: [0, 1] then (x - 0.5) / 0.5, channels first; ``flip`` rows mirrored."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if flip is not None and flip.any():
        x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
    return x


def cpu_bf16_available() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (else autocast would be slower, not faster)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_available() -> bool:
    """bfloat16 autocast pays off here: a GPU that supports it, or a CPU with native bfloat16 (AVX512-BF16, AMX)."""
    return torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_bf16_available()


class Positions(torch.utils.data.Dataset):
    """Positions 0..n-1 into a task's ``rows``; the task's loss reads the arrays (a batch is a LongTensor)."""

    def __init__(self, n: int):
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return int(index)


class SortedBatchPermutation(torch.utils.data.Sampler):
    """A permutation of the positions drawn from ``(seed, epoch)``, cut into full batches, each batch sorted."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int):
        self.n, self.batch_size, self.seed, self.epoch = int(n), int(batch_size), int(seed), int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size * self.batch_size

    def __iter__(self):
        steps = self.n // self.batch_size
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        order = np.sort(order[: steps * self.batch_size].reshape(steps, self.batch_size), axis=1)
        return iter(order.reshape(-1).tolist())


class ArrayTask(Task):
    """Common part: the crops, the rows to train on, the starting weights. ``init_model`` (e.g. distilled) is trained
    further; otherwise a MANIQA of ``model_config`` is made after ``torch.manual_seed(init_seed)``."""

    def __init__(self, config: TrainConfig, crops: np.ndarray, rows: np.ndarray, model_config,
                 init_seed: int = 0, init_model: nn.Module | None = None):
        super().__init__(config)
        self.crops, self.rows = crops, np.asarray(rows)
        self.model_config, self.init_seed, self.init_model = model_config, int(init_seed), init_model

    def _maniqa(self) -> nn.Module:
        if self.init_model is not None:
            return self.init_model
        from ..models.maniqa import MANIQAForImageQualityAssessment

        torch.manual_seed(self.init_seed)
        return MANIQAForImageQualityAssessment(self.model_config)

    def build_data(self):
        return None, Positions(len(self.rows)), None

    def train_sampler(self, dataset, epoch: int, generator: torch.Generator) -> torch.utils.data.Sampler:
        return SortedBatchPermutation(len(dataset), self.config.batch_size, self.config.seed, epoch)

    def _batch(self, model: nn.Module, positions: torch.Tensor, flip_from: int) -> tuple[np.ndarray, torch.Tensor]:
        """The batch's rows and its pixels; the flips are drawn from the batch's first (0) or last (-1) row."""
        rows = self.rows[positions.cpu().numpy()]
        flip = np.random.default_rng(int(rows[flip_from])).random(len(rows)) < 0.5
        device = next(model.parameters()).device
        return rows, uint8_pixels(self.crops[rows], flip).to(device)

    def evaluate(self, model, loader, accelerator) -> dict[str, float]:
        return {}

    def export(self, model: nn.Module, folder: Path) -> None:
        raise NotImplementedError("array tasks have no validation set, so the loop never exports them")


class EmbeddingProbe(nn.Module):
    """MANIQA plus the linear probe from its pooled last-stage tokens to the recognizer's embedding: one module, so
    the loop prepares, clips and checkpoints both. ``forward`` -> (predicted embedding, RMS of the tokens)."""

    def __init__(self, model: nn.Module, embedding_size: int):
        super().__init__()
        self.model = model
        size = model.config.image_size
        with torch.no_grad():
            width = model.forward_features(torch.zeros(1, 3, size, size)).shape[-1]
        self.fc = nn.Linear(width, embedding_size)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.model.forward_features(pixel_values)  # (B, N, C)
        rms = tokens.transpose(1, 2).float().pow(2).mean().sqrt()
        return self.fc(self.model.forward_head(tokens, pre_logits=True)), rms


class EmbeddingDistillationTask(ArrayTask):
    """MANIQA's tokens distilled from a recognizer: ``1 - cos(probe(mean token), embedding) + 0.1 log(RMS)^2``.

    ``targets``: the recognizer's (N, D) embeddings of the crops (any scale; they are normalised). ``trained_model``
    is the :class:`EmbeddingProbe`; its ``.model`` is the distilled MANIQA."""

    def __init__(self, config: TrainConfig, crops: np.ndarray, targets: np.ndarray, rows: np.ndarray, model_config,
                 init_seed: int = 0, init_model: nn.Module | None = None):
        super().__init__(config, crops, rows, model_config, init_seed, init_model)
        self.unit_targets = torch.from_numpy(targets / np.linalg.norm(targets, axis=1, keepdims=True)).float()

    def build_model(self) -> nn.Module:
        return EmbeddingProbe(self._maniqa(), self.unit_targets.shape[1])

    def loss(self, model, batch):
        rows, pixels = self._batch(model, batch, 0)
        pred, rms = model(pixels)
        target = self.unit_targets[rows].to(pred.device)
        cosine = (1.0 - nn.functional.cosine_similarity(pred.float(), target, dim=1)).mean()
        return (cosine + SCALE_WEIGHT * torch.log(rms).pow(2)).float()


class TunedLastStage(nn.Module):
    """MANIQA on a recognizer trunk whose last stage (the last of ``out_features``, ``stageK``) learns with the head,
    fed from two caches: the pooled maps of the frozen stages (the frozen trunk's ``backbone_features``, whose last
    stage's channels are ignored) and the full-size map that enters the last stage. The stage's batch norms keep the
    recognizer's statistics (the backbone stays in eval mode), so only its weights move. ``model`` itself is trained
    in place: afterwards it is an ordinary MANIQA, tuned stage inside, that scores from pixels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        backbone = model.backbone
        last = backbone.out_features[-1]
        if not last.startswith("stage"):
            raise ValueError(f"TunedLastStage tunes a residual stage; the trunk's last map is {last!r}")
        self.model = model  # the stage stays reachable only through it: one name per weight in checkpoints
        self.stage_index = int(last[len("stage"):]) - 1
        self.input_map = backbone.stage_names.index(last) - 1  # hidden_states index of the map entering it
        self.frozen_channels = sum(backbone.channels[:-1])

    def freeze_all_but_the_stage(self) -> "TunedLastStage":
        """What trains: the tuned stage and the head (PseudoLabelTask calls it; wrapping alone changes nothing)."""
        self.model.backbone.requires_grad_(False)
        self.stage.requires_grad_(True)
        return self

    @property
    def stage(self) -> nn.Module:
        return self.model.backbone.stages[self.stage_index]

    def train(self, mode: bool = True) -> "TunedLastStage":
        super().train(mode)
        self.model.backbone.eval()
        return self

    def forward(self, backbone_features: torch.Tensor, stage_input: torch.Tensor, labels: torch.Tensor | None = None):
        tuned = self.model.pool_backbone_maps([self.stage(stage_input)])
        maps = torch.cat([backbone_features[:, :self.frozen_channels], tuned], dim=1)
        return self.model(backbone_features=maps, labels=labels)


class PseudoLabelTask(ArrayTask):
    """MANIQA fitted to pseudo-labels (label units of ``model_config.label_range``; rows must have finite labels)."""

    def __init__(self, config: TrainConfig, crops: np.ndarray, labels: np.ndarray, rows: np.ndarray, model_config,
                 init_seed: int = 0, init_model: nn.Module | None = None,
                 backbone_features: np.ndarray | None = None, stage_inputs: np.ndarray | None = None):
        if stage_inputs is not None and (backbone_features is None or not isinstance(init_model, TunedLastStage)):
            raise ValueError("PseudoLabelTask: stage_inputs train a TunedLastStage (init_model) beside backbone_features")
        super().__init__(config, crops, rows, model_config, init_seed, init_model)
        self.features, self.stage_inputs = backbone_features, stage_inputs
        if not np.isfinite(np.asarray(labels)[self.rows]).all():
            raise ValueError("PseudoLabelTask: every training row needs a finite label")
        low, high = model_config.label_range
        self.scaled = torch.from_numpy((np.asarray(labels) - low) / (high - low)).float()

    def build_model(self) -> nn.Module:
        model = self._maniqa()
        if self.stage_inputs is not None:
            model.freeze_all_but_the_stage()
        elif self.features is not None:  # the backbone is frozen and never runs
            model.backbone.requires_grad_(False)
        return model

    def loss(self, model, batch):
        if self.features is None:
            rows, pixels = self._batch(model, batch, -1)
            return model(pixel_values=pixels, labels=self.scaled[rows].to(pixels.device)).loss.float()
        rows = self.rows[batch.cpu().numpy()]
        inputs = self._cached_inputs(model, rows)
        return model(**inputs, labels=self.scaled[rows].to(inputs["backbone_features"].device)).loss.float()

    def _cached_inputs(self, model, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The cached maps of ``rows`` (and their last-stage inputs when tuning it), each face mirrored or not as drawn
        from the batch's last row."""
        flip = torch.from_numpy(np.random.default_rng(int(rows[-1])).random(len(rows)) < 0.5)
        device = next(model.parameters()).device
        inputs = {"backbone_features": self.features}
        if self.stage_inputs is not None:
            inputs["stage_input"] = self.stage_inputs
        for name, array in inputs.items():
            maps = torch.from_numpy(np.asarray(array[rows], dtype=np.float32))
            maps[flip] = maps[flip].flip(-1)
            inputs[name] = maps.to(device)
        return inputs


class PairLink(nn.Module):
    """A quality network plus the two numbers that turn a pair's quality into the odds that a recognizer rejects it:
    ``P(reject) = sigmoid(bias - slope * (softmin(q_a, q_b) - 0.5))`` on the [0, 1] label scale. One module, so the
    loop prepares, clips and checkpoints all of it; only ``network`` (MANIQA, or a :class:`TunedLastStage`) is kept.

    Centred on the middle of the label scale, the link starts at even odds there: started at ``sigmoid(-slope *
    q)`` it would call every pair a success, and the first steps would drive most scores into the score head's
    closing ReLU, where they stay at 0 as one tie (measured: 8 % of the validation faces)."""

    TEMPERATURE = 0.05  # softmin's: within a few label points of each other both faces share the blame

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.slope = nn.Parameter(torch.tensor(30.0))

    def forward(self, **inputs) -> torch.Tensor:
        """Scores on the [0, 1] label scale."""
        config = (self.network.model if isinstance(self.network, TunedLastStage) else self.network).config
        low, high = config.label_range
        return (self.network(**inputs).score.float().view(-1) - low) / (high - low)

    def rejection_logit(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        t = self.TEMPERATURE
        worse = -t * torch.logsumexp(torch.stack([-first, -second]) / t, dim=0)
        return self.bias - self.slope * (worse - 0.5)


class PairFailureTask(PseudoLabelTask):
    """MANIQA's head fitted to the SDD-FIQA labels and, in the same step, to genuine comparisons: each face of the
    batch is paired with one of its genuine pairs (:class:`hf_fiqa.labels.pair_failures.GenuinePairs`, drawn per
    batch), and the binomial log-likelihood of that pair's rejections, given the softmin of the two faces' scores,
    is added to the labels' loss (the config's ``loss_type``, as MANIQA's own) times ``label_weight`` (0: the
    comparisons alone). Pairs with a photo outside ``rows`` are left out. Cached trunk features only
    (``backbone_features``, optionally ``stage_inputs``).
    ``trained_model`` is the :class:`PairLink`; its ``.network`` is what was fitted."""

    def __init__(self, config: TrainConfig, labels: np.ndarray, rows: np.ndarray, model_config, pairs,
                 backbone_features: np.ndarray, init_seed: int = 0, init_model: nn.Module | None = None,
                 stage_inputs: np.ndarray | None = None, label_weight: float = 1.0):
        super().__init__(config, None, labels, rows, model_config, init_seed, init_model, backbone_features,
                         stage_inputs)
        if not 0.0 <= label_weight < float("inf"):
            raise ValueError(f"label_weight must be finite and >= 0, got {label_weight!r}")
        self.label_weight = float(label_weight)
        fitted = np.isin(pairs.first, self.rows) & np.isin(pairs.second, self.rows)  # both photos carry a label
        pairs = type(pairs)(pairs.first[fitted], pairs.second[fitted], pairs.failures[fitted], pairs.comparisons)
        self.pairs = pairs
        from ..models.maniqa.modeling_maniqa import SCORE_LOSSES

        self.label_loss = SCORE_LOSSES[model_config.loss_type]
        self.order, self.start, self.count = pairs.partners()
        self.slots = np.concatenate([pairs.second, pairs.first])  # slot -> the other photo of its pair
        self.failures = torch.from_numpy(np.concatenate([pairs.failures, pairs.failures])).float()

    def build_model(self) -> nn.Module:
        return PairLink(super().build_model())

    def loss(self, model, batch):
        rows = self.rows[batch.cpu().numpy()]
        count = np.zeros(len(rows), dtype=np.int64)
        known = rows < len(self.count)
        count[known] = self.count[rows[known]]
        paired = np.flatnonzero(count > 0)
        draw = np.random.default_rng((int(rows[0]), int(rows[-1]))).random(len(paired))
        slots = self.order[self.start[rows[paired]] + (draw * count[paired]).astype(np.int64)]
        everyone = np.concatenate([rows, self.slots[slots]])
        scores = model(**self._cached_inputs(model, everyone))
        faces, partners = scores[:len(rows)], scores[len(rows):]
        loss = self.label_weight * self.label_loss(faces, self.scaled[rows].to(faces.device))
        if len(paired):
            logit = model.rejection_logit(faces[torch.from_numpy(paired)], partners)
            failed = self.failures[slots].to(logit.device)
            n = float(self.pairs.comparisons)
            nll = failed * nn.functional.softplus(-logit) + (n - failed) * nn.functional.softplus(logit)
            loss = loss + nll.mean() / n
        return loss


@torch.inference_mode()
def predict(model: nn.Module, crops: np.ndarray, rows: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
    """The MANIQA's ``score`` (label units) for uint8 crops, in batches (each read in row order)."""
    rows = np.arange(len(crops)) if rows is None else np.asarray(rows)
    out = np.empty(len(rows), dtype=np.float64)
    model.eval()
    for lo in range(0, len(rows), batch_size):
        index = rows[lo:lo + batch_size]
        out[lo:lo + len(index)] = model(pixel_values=uint8_pixels(crops[np.sort(index)])).score.double().numpy()[
            np.argsort(np.argsort(index))]
    return out


def check_not_constant(model: nn.Module, crops: np.ndarray, rows: np.ndarray, folder: Path) -> None:
    """Refuse a network that gives every face the same score (a dead ReLU head) instead of calibrating it."""
    if len(rows) > 1 and float(np.std(predict(model, crops, rows))) < 1e-6:
        raise RuntimeError(f"the quality network in {folder} gives every training face the same score (its head "
                           "died during fitting); delete that folder and rerun, with a lower learning rate")
