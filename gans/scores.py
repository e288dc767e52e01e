"""Inception Score and FID, from Inception-v3 when it is available, else from the suite's classifier.

Two feature networks feed the same two formulas:

- **Inception-v3** (torch-fidelity's TF1-compatible port, the network of Salimans et al. 2016 and
  Heusel et al. 2017): used when ``torch-fidelity`` is installed (``pip install -e ".[fidelity]"``)
  and its weights load from torch hub's cache, ``$TORCH_HOME/hub/checkpoints/`` (TORCH_HOME
  defaults to ~/.cache/torch), where torch-fidelity downloads them on first use; offline, put the
  file there (``inception_weights_file()`` names it). Scores named ``eval/is_inception`` and
  ``eval/fid_inception`` are on the published scale.
- **A classifier trained on the same dataset** (gans/classifier.py), offline: IS from its logits,
  FID from its penultimate features, named ``eval/is_classifier`` and ``eval/fid_classifier``.
  These compare arms with each other and are NOT Inception scores: every result names the
  network, its test accuracy, the number of samples, the reference split and the resizing.

Reference statistics come from a seeded, class-balanced sample of the reference split
(``reference_indices``; issue 13: the first N images of the class-sorted CIFAR-10 archive were
two classes, real-data IS 1.29). Each result records the sample's class counts, its real-data
IS, the FID floor (held-out real images of the other split against the reference) and a
calibration ladder (the same real images with noise, blur and dropped classes, with the Spearman
rank agreement of FID with each degradation's severity); all are cached with the statistics,
under a key that names the sampling scheme.

Inception Score (Salimans et al. 2016, §4): ``exp(E_x KL(p(y|x) || p(y)))``, mean and standard
deviation over ``splits`` disjoint splits. FID (Heusel et al. 2017, §3):
``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` between Gaussians fitted to features.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from gans.data import ImageData, cache_root, image_cache_key
from suite.store import write_atomic

# Below this mean per-pixel standard deviation (images in [-1, 1]) across samples, or within
# images, the generator is producing (near-)constant output: a collapsed run.
COLLAPSE_STD = 0.02


# --- the formulas (pure, on arrays) -----------------------------------------------------------


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """IS from class logits, N x K: mean and standard deviation over ``splits`` splits.

    Split i holds images [i N // splits, (i + 1) N // splits), in order, as in Salimans et al.'s
    code and torch-fidelity's (with its shuffle off); at most N splits. One-hot predictions
    spread evenly over K classes give K; identical predictions give 1.
    """
    log_p = torch.log_softmax(logits.double(), dim=1)
    total = len(log_p)
    count = max(1, min(splits, total))
    scores = []
    for i in range(count):
        part = log_p[i * total // count : (i + 1) * total // count]
        log_marginal = torch.logsumexp(part, dim=0) - np.log(len(part))
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def effective_classes(logits: torch.Tensor) -> float:
    """How many classes generated images spread over: exp of the entropy of the histogram of
    their predicted classes (argmax of logits, N x K). 1 when every image falls in one class, K
    when they spread evenly. Mode dropping between classes lowers it, where the collapse flag
    (``collapse_statistics``) sees only near-constant images: a generator of varied images of
    one class has IS near 1, is not flagged collapsed, and has 1 class here. Reading a GAN's mode
    coverage off a classifier's labels follows Santurkar et al. 2018 ("A classification-based
    study of covariate shift in GAN distributions"), who report class histograms."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1]).double()
    shares = counts[counts > 0] / counts.sum()
    return float(torch.exp(-(shares * shares.log()).sum()))


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, float64) of features, N x D."""
    array = features.double().cpu().numpy()
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of
    S1^(1/2) S2 S1^(1/2), which is symmetric positive semi-definite: stabler than sqrtm(S1 S2).
    In float64 with torch.linalg on the CPU, which keeps to the run's torch thread count (numpy's
    OpenBLAS starts threads of its own); for 2048-d features about 2.7 s on one thread of a 2-core
    machine, against 3.5 s for numpy's LAPACK on one thread.
    """
    sigma1, sigma2 = (
        torch.as_tensor(np.atleast_2d(s), dtype=torch.float64) for s in (sigma1, sigma2)
    )
    values, vectors = torch.linalg.eigh(sigma1)
    root1 = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    difference = torch.as_tensor(np.asarray(mu1) - np.asarray(mu2), dtype=torch.float64)
    value = difference @ difference + sigma1.trace() + sigma2.trace() - 2 * trace_root
    return max(float(value), 0.0)


def collapse_statistics(images: torch.Tensor) -> dict[str, float]:
    """How varied generated images (N x C x H x W, in [-1, 1]) are: the mean per-pixel standard
    deviation across samples and within images. Either below COLLAPSE_STD means collapse."""
    images = images.float()
    across = float(images.std(dim=0).mean())
    within = float(images.flatten(1).std(dim=1).mean())
    return {
        "across_samples_std": across,
        "within_image_std": within,
        "collapsed": float(across < COLLAPSE_STD or within < COLLAPSE_STD),
    }


# --- feature networks -------------------------------------------------------------------------


@dataclass
class FeatureNetwork:
    """A network that maps uint8 images to (logits, features), with what reports must say."""

    kind: str  # "inception" or "classifier": the metric key suffix
    name: str  # the label every report prints
    extract: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    resizing: str
    details: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None  # reference statistics are cached on disk under this key

    @torch.no_grad()
    def logits_and_features(self, images: torch.Tensor, batch: int = 500):
        outputs = [self.extract(chunk) for chunk in images.split(batch)]
        logits = torch.cat([o[0].float().cpu() for o in outputs])
        features = torch.cat([o[1].float().cpu() for o in outputs])
        return logits, features


def inception_weights_file() -> Path:
    """Where torch-fidelity reads its Inception-v3 weights from, and downloads them to when they
    are missing: torch hub's cache, ``$TORCH_HOME/hub/checkpoints/`` (TORCH_HOME defaults to
    ~/.cache/torch), under the file name of torch-fidelity's download URL."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(URL_INCEPTION_V3).path).name


def inception_network(device: str, log=print, required: bool = False) -> FeatureNetwork | None:
    """torch-fidelity's Inception-v3, or None, with one log line, when the package or its weights
    are missing (and cannot be downloaded). With ``required``, a one-line RuntimeError instead."""
    try:
        from torch_fidelity import __version__
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        weights = inception_weights_file()
        network = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"]
        ).to(device)
        network.eval()
        stamp = int(weights.stat().st_mtime)
    except Exception as error:  # noqa: BLE001 - no package, no network, no cached weights
        try:
            where = inception_weights_file()
        except ImportError:
            where = Path(torch.hub.get_dir()) / "checkpoints"
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line
        message = (
            f"Inception-v3 unavailable: needs torch-fidelity and its weights in {where} ({reason})"
        )
        if required:
            raise RuntimeError(f"scores: inception: {message}") from error
        log(f"{message}; scoring with the classifier")
        return None

    def extract(images: torch.Tensor):
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, logits = network(images.to(device))
        return logits, features

    return FeatureNetwork(
        kind="inception",
        name="Inception-v3 (torch-fidelity inception-v3-compat, pool3 2048-d)",
        extract=extract,
        resizing="bilinear to 299x299 inside torch-fidelity (TF1-compatible)",
        details={"package": f"torch-fidelity {__version__}", "weights": str(weights)},
        # Keyed by the weights file too: statistics of other weights are never reused.
        cache_key=f"inception-v3-compat-{stamp}",
    )


def weights_digest(model: torch.nn.Module) -> str:
    """The first 16 hex digits of a SHA-256 over the state dict (names and values): runs scored
    by different classifiers (another machine trained its own) are told apart in their records."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def classifier_network(model, record: dict[str, Any], tiny: bool = False) -> FeatureNetwork:
    """The suite's own classifier as a feature network, labeled with its test accuracy."""
    accuracy = float(record["test_accuracy"])
    dataset = record["dataset"]
    what = "a tiny CNN trained for this run only (smoke check)" if tiny else record["arch"]
    name = f"{dataset} classifier features ({what}, test accuracy {accuracy:.1%}), not Inception"
    cache_key = None
    if not tiny and "cache_file" in record:
        path = Path(record["cache_file"])
        cache_key = f"{path.stem}-{int(path.stat().st_mtime)}"
    device = next(model.parameters()).device

    def extract(images: torch.Tensor):
        return model.logits_and_features(images.to(device))

    return FeatureNetwork(
        kind="classifier",
        name=name,
        extract=extract,
        resizing=f"none (the classifier reads {record['image_size']}x{record['image_size']})",
        details={
            "arch": record["arch"],
            "test_accuracy": accuracy,
            "train_images": record.get("train_images"),
            "train_seconds": record.get("train_seconds"),
            "tiny": tiny,
            "weights_sha256": weights_digest(model),
        },
        cache_key=cache_key,
    )


# --- the reference set (issue 13: a fair sample, never the first N of a sorted archive) --------

# The sampling scheme's name goes into every cache key: statistics of the old reference sets
# (the first N images of a class-sorted split: airplanes and automobiles only for CIFAR-10) are
# never reused. Change it whenever reference_indices draws differently.
REFERENCE_SAMPLING = "balanced-v1"
REFERENCE_SEED = 0
"""The sample is the same for every run, arm and seed of an experiment: all FIDs are measured
against one set of statistics."""


def reference_indices(labels: torch.Tensor, count: int, seed: int = REFERENCE_SEED):
    """A seeded, class-balanced sample of ``count`` items, in a seeded random order.

    Each class gets ``count // K`` items (the remainder goes, one each, to classes in a seeded
    random order; a class with too few items gives all it has and the others fill up), drawn
    uniformly without replacement. Unlabeled items (label -1) are sampled uniformly. The order is
    shuffled so that the Inception Score's in-order splits each see every class (Salimans et
    al.'s splits are consecutive: a class-sorted set gives one class per split, IS near 1).
    Uses a generator of its own: the training RNG never moves.
    """
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    count = min(count, len(labels))
    if (labels < 0).any():
        chosen = torch.randperm(len(labels), generator=generator)[:count]
        return chosen[torch.randperm(len(chosen), generator=generator)]
    classes = labels.unique()
    members = [(labels == c).nonzero().flatten() for c in classes]
    members = [m[torch.randperm(len(m), generator=generator)] for m in members]
    quota = _class_quota([len(m) for m in members], count, generator)
    chosen = torch.cat([m[:q] for m, q in zip(members, quota, strict=True)])
    return chosen[torch.randperm(len(chosen), generator=generator)]


def _class_quota(sizes: list[int], count: int, generator: torch.Generator) -> list[int]:
    """Items per class summing to ``count`` (<= sum(sizes)), as equal as the sizes allow."""
    quota = [0] * len(sizes)
    left = count
    while left > 0:
        open_ = [i for i, size in enumerate(sizes) if quota[i] < size]
        share = max(1, left // len(open_))
        turn = torch.randperm(len(open_), generator=generator).tolist()
        for i in (open_[j] for j in turn):
            add = min(share, sizes[i] - quota[i], left)
            quota[i] += add
            left -= add
            if left == 0:
                break
    return quota


@dataclass
class ReferenceSet:
    """The real images a scorer compares with, and held-out real images of the other split.

    ``images`` give the reference statistics and the real-data IS; ``held_out`` (as many as a
    score's generated samples, from the other split) give the FID floor, FID(real held-out vs
    reference): what a generator that reproduces the data distribution would score, with this
    many samples. The calibration ladder degrades ``held_out``.
    """

    images: torch.Tensor
    split: str
    labels: torch.Tensor | None = None
    classes: list[str] = field(default_factory=list)
    held_out: torch.Tensor | None = None
    held_out_labels: torch.Tensor | None = None
    held_out_split: str | None = None
    sampling: str = "as-given"

    def class_counts(self) -> dict[str, int]:
        """Images per class name (empty when unlabeled)."""
        if self.labels is None or (self.labels < 0).any():
            return {}
        counts = torch.bincount(self.labels.cpu(), minlength=len(self.classes)).tolist()
        names = self.classes or [str(i) for i in range(len(counts))]
        return dict(zip(names, counts, strict=True))

    def cache_name(self) -> str:
        """The part of a statistics cache key that names this set."""
        held = 0 if self.held_out is None else len(self.held_out)
        return f"{self.split}-{len(self.images)}-{self.sampling}-vs{held}"


def reference_set(data: ImageData, split: str, count: int, held_out: int) -> ReferenceSet:
    """A seeded class-balanced sample of ``count`` images of ``split`` (``reference_indices``)
    and one of ``held_out`` images of the other split (for the floor and the ladder)."""
    other = "test" if split == "train" else "train"
    images = {"train": (data.train, data.train_labels), "test": (data.test, data.test_labels)}
    ref_images, ref_labels = images[split]
    index = reference_indices(ref_labels, count).to(ref_images.device)
    other_images, other_labels = images[other]
    held_index = None
    if len(other_images) >= 2:
        held_index = reference_indices(other_labels, held_out, REFERENCE_SEED + 1)
        held_index = held_index.to(other_images.device)
    return ReferenceSet(
        images=ref_images[index],
        split=split,
        labels=ref_labels[index].cpu(),
        classes=list(data.classes),
        held_out=None if held_index is None else other_images[held_index],
        held_out_labels=None if held_index is None else other_labels[held_index].cpu(),
        held_out_split=other if held_index is not None else None,
        sampling=f"{REFERENCE_SAMPLING}-s{REFERENCE_SEED}",
    )


# --- the calibration ladder: scores of real data degraded by known amounts ------------------

NOISE_LEVELS = (0.05, 0.1, 0.2)
"""Gaussian pixel noise, standard deviation as a fraction of the 0-255 range."""
BLUR_LEVELS = (0.5, 1.0, 2.0)
"""Gaussian blur, sigma in pixels."""
MODE_DROP_LEVELS = (0.5, 0.2, 0.1)
"""Fraction of the classes kept; images of dropped classes are replaced by kept-class images."""


def degrade(images: torch.Tensor, labels, family: str, level: float, seed: int) -> torch.Tensor:
    """uint8 images degraded by one rung of the ladder (a generator of its own: no global RNG)."""
    generator = torch.Generator(images.device).manual_seed(seed)
    if family == "noise":
        noise = torch.randn(images.shape, device=images.device, generator=generator)
        return (images.float() + noise * level * 255).round().clamp(0, 255).to(torch.uint8)
    if family == "blur":
        from torchvision.transforms.v2.functional import gaussian_blur

        size = 2 * math.ceil(3 * level) + 1
        blurred = gaussian_blur(images.float(), [size, size], [level, level])
        return blurred.round().clamp(0, 255).to(torch.uint8)
    if family == "mode_drop":
        classes = int(labels.max()) + 1
        keep = max(1, round(classes * level))
        kept = (labels < keep).nonzero().flatten()
        pick = torch.randint(
            len(kept), (len(labels),), generator=torch.Generator().manual_seed(seed)
        )
        source = torch.where(labels < keep, torch.arange(len(labels)), kept[pick])
        return images[source.to(images.device)]
    raise ValueError(f"unknown degradation {family!r} (valid: noise, blur, mode_drop)")


def ladder(labels: torch.Tensor | None) -> list[tuple[str, float, int]]:
    """(family, level, severity) rungs; severity 0 is the real data. Mode dropping needs labels."""
    rungs = [("real", 0.0, 0)]
    families = {"noise": NOISE_LEVELS, "blur": BLUR_LEVELS}
    if labels is not None and not (labels < 0).any() and int(labels.max()) >= 1:
        families["mode_drop"] = MODE_DROP_LEVELS
    for family, levels in families.items():
        rungs += [(family, level, severity) for severity, level in enumerate(levels, 1)]
    return rungs


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    rx, ry = (_ranks(np.asarray(v, dtype=float)) for v in (x, y))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def calibration_summary(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """Per family, Spearman of FID with severity (real data at severity 0): 1 when FID rises
    with every rung, as a quality measure must."""
    real = next(level for level in levels if level["family"] == "real")
    rho = {}
    for family in dict.fromkeys(level["family"] for level in levels if level["family"] != "real"):
        rungs = [real] + [level for level in levels if level["family"] == family]
        rho[family] = spearman([r["severity"] for r in rungs], [r["fid"] for r in rungs])
    return {"spearman": rho, "spearman_min": min(rho.values()) if rho else float("nan")}


# --- scoring a run's samples -----------------------------------------------------------------


class Scorer:
    """Scores generated images against fixed real-data statistics of one feature network.

    :param network: the feature network.
    :param reference: the real images (a ReferenceSet, or uint8 images of ``reference_split``).
    :param reference_split: "train" or "test", recorded with every score.
    :param data_key: names the dataset in cache keys.
    :param cache_dir: where reference statistics are cached (when the network has a cache key),
        with the real-data IS, the FID floor and the calibration ladder.
    """

    def __init__(
        self,
        network: FeatureNetwork,
        reference: ReferenceSet | torch.Tensor,
        reference_split: str,
        data_key: str,
        cache_dir: Path | None = None,
        splits: int = 10,
        calibrate: bool = True,
    ):
        if not isinstance(reference, ReferenceSet):
            reference = ReferenceSet(reference, reference_split)
        self.network, self.reference_split, self.splits = network, reference_split, splits
        self.reference = reference
        self.reference_count = len(reference.images)
        path = None
        if cache_dir is not None and network.cache_key is not None:
            ladder_part = "" if calibrate else "-nocal"
            name = f"{network.cache_key}-{data_key}-{reference.cache_name()}{ladder_part}.pt"
            path = cache_dir / "stats" / name
        if path is not None and path.exists():
            saved = torch.load(path, weights_only=True)
            self.mu, self.sigma = saved["mu"].numpy(), saved["sigma"].numpy()
            self.real_is, self.floor = float(saved["real_is"]), saved["floor"]
            self.calibration = saved["calibration"]
            return
        logits, features = network.logits_and_features(reference.images)
        self.mu, self.sigma = feature_statistics(features)
        self.real_is = inception_score(logits, splits)[0]
        self.floor, self.calibration = self._held_out_scores(calibrate)
        if path is not None:
            # Atomic: runs that start together may read this file while another writes it.
            saved = {"mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)}
            saved.update(real_is=self.real_is, floor=self.floor, calibration=self.calibration)
            buffer = io.BytesIO()
            torch.save(saved, buffer)
            write_atomic(path, buffer.getvalue())

    def _held_out_scores(self, calibrate: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The FID floor and (with ``calibrate``) the calibration ladder, on the held-out real
        images (empty dicts without them)."""
        held = self.reference.held_out
        if held is None:
            return {}, {}
        labels = self.reference.held_out_labels
        rungs = ladder(labels) if calibrate else ladder(labels)[:1]
        levels = []
        for index, (family, level, severity) in enumerate(rungs):
            images = held if family == "real" else degrade(held, labels, family, level, index)
            scores = self.score(images)
            is_key, fid_key = self.keys
            rung = {"family": family, "level": level, "severity": severity}
            levels.append({**rung, "is": scores[is_key], "fid": scores[fid_key]})
        real = levels[0]
        floor = {
            "fid": real["fid"],
            "is": real["is"],
            "samples": len(held),
            "split": self.reference.held_out_split,
        }
        if len(levels) == 1:
            return floor, {}
        calibration = {"levels": levels, **calibration_summary(levels), "samples": len(held)}
        return floor, calibration

    @property
    def keys(self) -> tuple[str, str]:
        return f"eval/is_{self.network.kind}", f"eval/fid_{self.network.kind}"

    @property
    def classes_key(self) -> str:
        return f"eval/classes_{self.network.kind}"

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """IS, FID and the effective number of classes of generated uint8 images:
        {"eval/is_<kind>": ..., "eval/fid_<kind>": ..., "eval/classes_<kind>": ...}."""
        logits, features = self.network.logits_and_features(images)
        is_mean, _ = inception_score(logits, self.splits)
        mu, sigma = feature_statistics(features)
        is_key, fid_key = self.keys
        return {
            is_key: is_mean,
            fid_key: frechet_distance(self.mu, self.sigma, mu, sigma),
            self.classes_key: effective_classes(logits),
        }

    def metric_scales(self) -> dict[str, str]:
        """Each score's scale for the judge (suite/judge/metrics.py declared_scale). A classifier
        retrained elsewhere has other weights (CPUs differ in their kernels: the same seed gave
        82.45% on one machine, 82.80% on another), and its scores another scale: the weights'
        digest is part of it, so the judge never compares scores from two classifiers."""
        d = self.network.details
        if self.network.kind != "classifier" or "weights_sha256" not in d:
            return {}  # Inception's weights are fixed; a test's stand-in network has no digest
        scale = f"classifier-features ({d.get('arch')}, weights {d['weights_sha256']})"
        return dict.fromkeys((*self.keys, self.classes_key), scale)

    def details(self, samples: int) -> dict[str, Any]:
        """The metric settings every result carries."""
        details = {
            "feature_network": self.network.name,
            "feature_network_kind": self.network.kind,
            **{f"feature_network_{k}": v for k, v in self.network.details.items()},
            "is_name": f"IS ({self.network.name})",
            "fid_name": f"FID ({self.network.name})",
            "samples": samples,
            "is_splits": self.splits,
            "reference_split": self.reference_split,
            "reference_images": self.reference_count,
            "reference_sampling": self.reference.sampling,
            "reference_class_counts": self.reference.class_counts(),
            "reference_is": self.real_is,
        }
        if self.floor:
            details["real_fid_floor"] = self.floor
        if self.calibration:
            details["calibration"] = self.calibration
        details["resizing"] = self.network.resizing
        return details

    def summary(self) -> dict[str, str]:
        """One-line texts for a result's details, which the report prints with its settings."""
        counts = self.reference.class_counts()
        spread = "unlabeled"
        if counts:
            low, high = min(counts.values()), max(counts.values())
            spread = f"{len(counts)} classes, {low}-{high} per class"
        lines = {
            "reference_set": f"{self.reference_count} {self.reference_split} images "
            f"({self.reference.sampling}, {spread}); real-data IS {self.real_is:.2f}"
        }
        if self.floor:
            lines["reference_set"] += (
                f"; FID floor {self.floor['fid']:.3g} ({self.floor['samples']} real "
                f"{self.floor['split']} images vs the reference)"
            )
        if self.calibration:
            lines["score_calibration"] = _ladder_text(self.calibration)
        return lines


def _ladder_text(calibration: dict[str, Any]) -> str:
    """'FID by rung: real 1.2; noise 3.1/5.0/9.9; ...; Spearman with severity: noise 1.00...'"""
    levels = calibration["levels"]
    parts = [f"real {levels[0]['fid']:.3g} (IS {levels[0]['is']:.2f})"]
    for family, rho in calibration["spearman"].items():
        rungs = [level for level in levels if level["family"] == family]
        names = "/".join(f"{r['level']:g}" for r in rungs)
        fids = "/".join(f"{r['fid']:.3g}" for r in rungs)
        parts.append(f"{family} {names}: {fids} (Spearman {rho:.2f})")
    return (
        f"classifier FID of degraded real images ({calibration['samples']} held-out): "
        + "; ".join(parts)
    )


def build_scorer(config, data: ImageData, ctx) -> Scorer:
    """The scorer a run uses.

    :param config: the trainer's Config (gans/dcgan.py): ``scores`` ("auto": Inception when
        available, else the classifier; "inception": required, a RuntimeError without it;
        "classifier"), ``classifier`` ("cached": the dataset's cached classifier, trained now and
        cached if missing; "tiny": a tiny CNN trained in seconds on this run's data, smoke runs
        only), ``data``, ``reference_split``, ``reference_samples``, ``eval_samples`` (the size of
        the held-out real set for the FID floor and the ladder: FID depends on the sample count).
    :param data: the run's images.
    :param ctx: the run (a RunContext, or anything with ``device``, ``seed``, ``log`` and
        ``run_dir``): a tiny classifier is saved in ``run_dir`` when trained and loaded from there
        when the run resumes, so the resumed run scores with the very network the interrupted
        one used (on CUDA, retraining need not reproduce it bit for bit).
    """
    network = None
    if config.scores in ("auto", "inception"):
        network = inception_network(ctx.device, ctx.log, required=config.scores == "inception")
    if network is None:
        network = _classifier_network(config.classifier, config.data, data, ctx)
    reference = reference_set(
        data, config.reference_split, config.reference_samples, config.eval_samples
    )
    if network.cache_key is None:
        return Scorer(
            network, reference, config.reference_split, data.name, calibrate=config.calibration
        )
    return Scorer(network, reference, config.reference_split, _data_key(config.data, data),
                  cache_root(config.data), calibrate=config.calibration)  # fmt: skip


def _data_key(data_config, data: ImageData) -> str:
    """The dataset's part of a statistics cache key: the data settings' digest (another
    max_train or archive, another cache), or name and shape when the files are not there."""
    try:
        return image_cache_key(data_config)
    except OSError:
        return f"{data.name}-{data.train.shape[-1]}px-{data.train.shape[1]}ch"


TINY_CLASSIFIER_FILE = "score_classifier.pt"


def _save_in_run(model: torch.nn.Module, record: dict[str, Any], path: Path) -> None:
    """A tiny classifier in gans/classifier.py's file format, written atomically like every
    file of a run directory (a kill mid-write leaves no half-written file to load)."""
    buffer = io.BytesIO()
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"record": record, "state_dict": state}, buffer)
    write_atomic(path, buffer.getvalue())


def _classifier_network(classifier: str, data_config, data, ctx) -> FeatureNetwork:
    from gans.classifier import cached_or_trained, load_classifier, tiny_settings, train_classifier

    run_dir = getattr(ctx, "run_dir", None)
    if classifier == "tiny":
        saved = run_dir / TINY_CLASSIFIER_FILE if run_dir is not None else None
        if saved is not None and saved.exists():
            model, record = load_classifier(saved, ctx.device)
            ctx.log(f"tiny score classifier loaded from {saved.name}")
            return classifier_network(model, record, tiny=True)
        started = time.perf_counter()
        settings = tiny_settings()
        settings.seed = ctx.seed
        model, record = train_classifier(data, settings, ctx.device, log=lambda message: None)
        ctx.log(f"tiny score classifier trained in {time.perf_counter() - started:.1f} s")
        if saved is not None:
            _save_in_run(model, record, saved)
        return classifier_network(model, record, tiny=True)
    model, record = cached_or_trained(data_config, ctx.device, ctx.log)
    return classifier_network(model, record)
