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

Inception Score (Salimans et al. 2016, §4): ``exp(E_x KL(p(y|x) || p(y)))``, mean and standard
deviation over ``splits`` disjoint splits. FID (Heusel et al. 2017, §3):
``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` between Gaussians fitted to features.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from gans.data import ImageData, ImageDataConfig, cache_root
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
        },
        cache_key=cache_key,
    )


# --- scoring a run's samples -----------------------------------------------------------------


class Scorer:
    """Scores generated images against fixed real-data statistics of one feature network.

    :param network: the feature network.
    :param reference: real images (uint8) of the reference split.
    :param reference_split: "train" or "test", recorded with every score.
    :param cache_dir: where reference statistics are cached (when the network has a cache key).
    """

    def __init__(
        self,
        network: FeatureNetwork,
        reference: torch.Tensor,
        reference_split: str,
        data_key: str,
        cache_dir: Path | None = None,
        splits: int = 10,
    ):
        self.network, self.reference_split, self.splits = network, reference_split, splits
        self.reference_count = len(reference)
        path = None
        if cache_dir is not None and network.cache_key is not None:
            name = f"{network.cache_key}-{data_key}-{reference_split}-{len(reference)}.pt"
            path = cache_dir / "stats" / name
        if path is not None and path.exists():
            saved = torch.load(path, weights_only=True)
            self.mu, self.sigma = saved["mu"].numpy(), saved["sigma"].numpy()
            self.real_is = float(saved["real_is"])
            return
        logits, features = network.logits_and_features(reference)
        self.mu, self.sigma = feature_statistics(features)
        self.real_is = inception_score(logits, splits)[0]
        if path is not None:
            # Atomic: runs that start together may read this file while another writes it.
            statistics = {"mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)}
            buffer = io.BytesIO()
            torch.save({**statistics, "real_is": self.real_is}, buffer)
            write_atomic(path, buffer.getvalue())

    @property
    def keys(self) -> tuple[str, str]:
        return f"eval/is_{self.network.kind}", f"eval/fid_{self.network.kind}"

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """IS and FID of generated uint8 images: {"eval/is_<kind>": ..., "eval/fid_<kind>": ...}."""
        logits, features = self.network.logits_and_features(images)
        is_mean, _ = inception_score(logits, self.splits)
        mu, sigma = feature_statistics(features)
        is_key, fid_key = self.keys
        return {is_key: is_mean, fid_key: frechet_distance(self.mu, self.sigma, mu, sigma)}

    def details(self, samples: int) -> dict[str, Any]:
        """The metric settings every result carries."""
        return {
            "feature_network": self.network.name,
            "feature_network_kind": self.network.kind,
            **{f"feature_network_{k}": v for k, v in self.network.details.items()},
            "is_name": f"IS ({self.network.name})",
            "fid_name": f"FID ({self.network.name})",
            "samples": samples,
            "is_splits": self.splits,
            "reference_split": self.reference_split,
            "reference_images": self.reference_count,
            "reference_is": self.real_is,
            "resizing": self.network.resizing,
        }


def build_scorer(
    mode: str,
    classifier: str,
    data_config: ImageDataConfig,
    data: ImageData,
    reference_split: str,
    reference_samples: int,
    device: str,
    seed: int,
    log=print,
    run_dir: Path | None = None,
) -> Scorer:
    """The scorer a run uses.

    :param mode: "auto" (Inception when available, else the classifier), "inception" (required;
        a RuntimeError without it) or "classifier".
    :param classifier: "cached" (the dataset's cached classifier, trained now and cached if
        missing) or "tiny" (a tiny CNN trained in seconds on this run's data: smoke runs only).
    :param run_dir: the run's directory: a tiny classifier is saved there when trained and
        loaded from there when the run resumes, so the resumed run scores with the very network
        the interrupted one used (on CUDA, retraining need not reproduce it bit for bit).
    """
    network = None
    if mode in ("auto", "inception"):
        network = inception_network(device, log, required=mode == "inception")
    if network is None:
        network = _classifier_network(classifier, data_config, data, device, seed, log, run_dir)
    reference = data.train if reference_split == "train" else data.test
    reference = reference[:reference_samples]
    key = f"{data.name}-{reference.shape[-1]}px-{reference.shape[1]}ch"
    cache = cache_root(data_config) if network.cache_key else None
    return Scorer(network, reference, reference_split, key, cache)


TINY_CLASSIFIER_FILE = "score_classifier.pt"


def _save_in_run(model: torch.nn.Module, record: dict[str, Any], path: Path) -> None:
    """A tiny classifier in gans/classifier.py's file format, written atomically like every
    file of a run directory (a kill mid-write leaves no half-written file to load)."""
    buffer = io.BytesIO()
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"record": record, "state_dict": state}, buffer)
    write_atomic(path, buffer.getvalue())


def _classifier_network(
    classifier, data_config, data, device, seed, log, run_dir=None
) -> FeatureNetwork:
    from gans.classifier import cached_or_trained, load_classifier, tiny_settings, train_classifier

    if classifier == "tiny":
        saved = run_dir / TINY_CLASSIFIER_FILE if run_dir is not None else None
        if saved is not None and saved.exists():
            model, record = load_classifier(saved, device)
            log(f"tiny score classifier loaded from {saved.name}")
            return classifier_network(model, record, tiny=True)
        started = time.perf_counter()
        settings = tiny_settings()
        settings.seed = seed
        model, record = train_classifier(data, settings, device, log=lambda message: None)
        log(f"tiny score classifier trained in {time.perf_counter() - started:.1f} s")
        if saved is not None:
            _save_in_run(model, record, saved)
        return classifier_network(model, record, tiny=True)
    model, record = cached_or_trained(data_config, device, log)
    return classifier_network(model, record)
