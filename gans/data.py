"""Image datasets for the generative trainers, decoded once and kept as uint8 tensors.

Sources (``ImageDataConfig.source``):

- ``cifar10``, ``mnist``, ``fashion_mnist``, ``celeba``: torchvision datasets, downloaded on first
  use when ``download: true`` (into ``path``, or ``<cache_dir>/torchvision``);
- ``folder``: an image folder, ``root/<class>/*.png|jpg`` or ``root/{train,test}/<class>/...``
  (the layout ``torchvision.datasets.ImageFolder`` reads), so a user's own images work;
- ``archive``: the same layout inside a ``.tar``/``.tar.gz``, read without unpacking (the
  offline CIFAR-10 copy ``../shared/data/cifar10-jpeg.tar.gz``);
- ``mnist_idx``: a directory of MNIST-format IDX files, gzipped or not (``../shared/data/mnist-t10k``,
  the MNIST test set only: its first ``idx_train_count`` digits train, the rest test).

Whatever the source, the images are decoded once into ``<cache_dir>/images/<key>.pt`` (uint8,
N x C x H x W, with labels), so a later run loads them in about a second. Trainers move the
tensors to the device and normalize/augment there (``to_unit_range``, ``random_hflip``): no
per-batch Python data pipeline in the hot loop.

Relative paths are read from the repository root, so ``../shared/data/...`` works from any
working directory of a clone placed next to ``shared/``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from suite.errors import ConfigError
from suite.paths import PROJECT_ROOT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TORCHVISION_SOURCES = ("cifar10", "mnist", "fashion_mnist", "celeba")

# How to obtain each source when it is missing; printed in DataError messages.
HOW_TO_GET = {
    "cifar10": "set data.download: true (torchvision fetches CIFAR-10, 163 MB)",
    "mnist": "set data.download: true (torchvision fetches MNIST, 12 MB)",
    "fashion_mnist": "set data.download: true (torchvision fetches Fashion-MNIST, 30 MB)",
    "celeba": "set data.download: true, or fetch img_align_celeba from the CelebA site into "
    "PATH/celeba (torchvision's Google Drive download is often rate-limited)",
    "folder": "point data.path at a folder of images laid out as CLASS/*.png or "
    "{train,test}/CLASS/*.png",
    "archive": "point data.path at a .tar or .tar.gz holding train/CLASS/*.jpg and "
    "test/CLASS/*.jpg (the offline copy is ../shared/data/cifar10-jpeg.tar.gz)",
    "mnist_idx": "point data.path at a folder of MNIST IDX files such as "
    "t10k-images-idx3-ubyte.gz (the offline copy is ../shared/data/mnist-t10k), or use "
    "source: mnist with download: true",
}


class DataError(ConfigError):
    """Missing or unreadable data: names the path and how to obtain the data."""


@dataclass
class ImageDataConfig:
    """Where a trainer's images come from and how they are prepared."""

    source: Literal[
        "cifar10", "mnist", "fashion_mnist", "celeba", "folder", "archive", "mnist_idx"
    ] = "archive"
    """a torchvision dataset, an image folder, a .tar(.gz) archive, or MNIST IDX files."""
    path: str | None = "../shared/data/cifar10-jpeg.tar.gz"
    """file or folder (relative paths: from the repository root); torchvision: download root."""
    download: bool = False
    """torchvision sources: download on first use."""
    image_size: int = 32
    """images are resized (antialiased) to image_size x image_size once, when cached."""
    channels: int = 3
    """3 (RGB) or 1 (grey); folder/archive images are converted."""
    max_train: int | None = None
    """use only the first N training images (class-balanced order), e.g. for smoke runs."""
    max_test: int | None = None
    """use only the first N test images."""
    idx_train_count: int = 8000
    """mnist_idx with test files only: this many train, the rest test (CLAIMS.md Part 2, row 2)."""
    holdout_every: int = 10
    """folder/archive without train/ and test/: every Nth image (sorted) is a test image."""
    cache_dir: str | None = None
    """decoded-image and classifier cache; default $SUITE_CACHE_DIR or ~/.cache/suite."""

    def validate(self) -> None:
        if self.image_size not in (28, 32, 64):
            raise ValueError(f"data.image_size must be 28, 32 or 64, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"data.channels must be 1 or 3, got {self.channels}")
        if self.source in ("folder", "archive", "mnist_idx") and not self.path:
            raise ValueError(f"data.path is required for source {self.source!r}")
        for name in ("max_train", "max_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1")

    def missing_data(self) -> str | None:
        """Why the data cannot be read (the path does not exist: how to get it), or None; the
        CLI asks before a grid runs (suite/config.py check_data_paths)."""
        if self.source in TORCHVISION_SOURCES:
            return None
        path = resolve_path(str(self.path))
        return None if path.exists() else f"data not found at {path}: {HOW_TO_GET[self.source]}"

    @property
    def name(self) -> str:
        """A short dataset name for classifier caches and reports (no sizes or limits)."""
        if self.source in TORCHVISION_SOURCES:
            return self.source
        return Path(str(self.path)).name.split(".")[0] or self.source


@dataclass
class ImageData:
    """Decoded images: uint8 tensors N x C x H x W and int64 labels (-1 when unlabeled)."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    name: str
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: str) -> ImageData:
        return ImageData(
            self.train.to(device),
            self.train_labels.to(device),
            self.test.to(device),
            self.test_labels.to(device),
            self.classes,
            self.name,
            self.description,
        )


# --- on-device preparation (the hot loop uses only these) -----------------------------------


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return images.float().div_(255.0)


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of DCGAN's tanh generator (Radford et al. §4)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (what score networks read)."""
    return images.float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2, on the images' device."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


# --- loading and caching ----------------------------------------------------------------------


def resolve_path(path: str) -> Path:
    """Relative paths are read from the repository root (then from the working directory)."""
    candidate = Path(os.path.expanduser(path))
    if candidate.is_absolute():
        return candidate
    from_root = PROJECT_ROOT / candidate
    return from_root if from_root.exists() or not candidate.exists() else candidate.resolve()


def cache_root(config: ImageDataConfig) -> Path:
    root = config.cache_dir or os.environ.get("SUITE_CACHE_DIR") or "~/.cache/suite"
    return resolve_path(root)


def image_cache_key(config: ImageDataConfig) -> str:
    """The decoded images' cache name: dataset, size and a digest of the data settings (and of
    the file, for archives and folders)."""
    settings = asdict(config)
    settings.pop("cache_dir")
    settings.pop("download")
    if config.source not in TORCHVISION_SOURCES:
        # A changed file (new images, new archive) must not be served from an old cache.
        path = resolve_path(str(config.path)).resolve()
        stat = path.stat()
        settings["path"] = str(path)  # one cache whether the path was given relative or not
        settings["file"] = [stat.st_size, int(stat.st_mtime)]
    digest = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:12]
    return f"{config.name}-{config.image_size}px-{digest}"


def load_image_data(config: ImageDataConfig, log=print) -> ImageData:
    """Decoded images for ``config``, from the cache when possible; DataError when missing."""
    if config.source not in TORCHVISION_SOURCES:
        path = resolve_path(str(config.path))
        if not path.exists():
            raise DataError(
                f"data not found at {path}: {HOW_TO_GET[config.source]}", key="data.path"
            )
    cache_file = cache_root(config) / "images" / f"{image_cache_key(config)}.pt"
    if cache_file.exists():
        try:
            saved = torch.load(cache_file, map_location="cpu", weights_only=True)
            return ImageData(**saved)
        except Exception as error:  # noqa: BLE001 - a corrupt cache is rebuilt, not fatal
            log(f"ignoring unreadable image cache {cache_file}: {error}")
    data = _decode(config)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_suffix(f".tmp{os.getpid()}")
    torch.save(asdict(data), temporary)
    temporary.replace(cache_file)  # atomic: parallel runs never read a half-written cache
    log(f"cached {len(data.train)} + {len(data.test)} images in {cache_file}")
    return data


def _decode(config: ImageDataConfig) -> ImageData:
    source = config.source
    try:
        if source in TORCHVISION_SOURCES:
            train, train_labels, test, test_labels, classes = _torchvision(config)
        elif source == "mnist_idx":
            train, train_labels, test, test_labels, classes = _mnist_idx(config)
        else:
            train, train_labels, test, test_labels, classes = _labeled_files(config)
    except DataError:
        raise
    except (OSError, RuntimeError, ValueError, tarfile.TarError, EOFError) as error:
        where = config.path or source
        raise DataError(
            f"cannot read {source} data at {where}: {error}; {HOW_TO_GET[source]}",
            key="data.path",
        ) from None
    train, train_labels = _first(train, train_labels, config.max_train)
    test, test_labels = _first(test, test_labels, config.max_test)
    train, test = (_prepare(x, config.image_size, config.channels) for x in (train, test))
    description = f"{source} {config.path or ''}".strip()
    return ImageData(train, train_labels, test, test_labels, classes, config.name, description)


def _balanced_first(labels: torch.Tensor, limit: int | None) -> torch.Tensor:
    """Indices of the first ``limit`` items taking classes in turn (one of each class, then the
    next of each, ...), in their original order, so small subsets stay class-balanced."""
    if limit is None or limit >= len(labels):
        return torch.arange(len(labels))
    rank = torch.zeros(len(labels), dtype=torch.long)
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    order = torch.argsort(rank * (int(labels.max()) + 2) + labels + 1, stable=True)[:limit]
    return order.sort().values


def _first(images: torch.Tensor, labels: torch.Tensor, limit: int | None):
    keep = _balanced_first(labels, limit)
    return images[keep], labels[keep]


def _prepare(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Convert channels and resize (antialiased bilinear) once; returns uint8 N x C x H x W."""
    if images.shape[1] != channels:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 luma
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
        else:
            images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != size or images.shape[-2] != size:
        chunks = []
        for chunk in images.split(4096):
            resized = F.interpolate(
                chunk.float(), size=(size, size), mode="bilinear", antialias=True
            )
            chunks.append(resized.round().clamp(0, 255).to(torch.uint8))
        images = torch.cat(chunks)
    return images.contiguous()


def _torchvision(config: ImageDataConfig):
    import torchvision

    root = resolve_path(config.path) if config.path else cache_root(config) / "torchvision"
    kinds = {
        "cifar10": torchvision.datasets.CIFAR10,
        "mnist": torchvision.datasets.MNIST,
        "fashion_mnist": torchvision.datasets.FashionMNIST,
    }
    try:
        if config.source == "celeba":
            return _celeba(root, config)
        splits = [
            kinds[config.source](str(root), train=t, download=config.download) for t in (1, 0)
        ]
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise DataError(
            f"{config.source} not found under {root}: {error}; {HOW_TO_GET[config.source]}",
            key="data.path",
        ) from None
    out = []
    for split in splits:
        images = torch.as_tensor(np.asarray(split.data))
        images = images.permute(0, 3, 1, 2) if images.ndim == 4 else images[:, None]
        out += [images.contiguous(), torch.as_tensor(np.asarray(split.targets), dtype=torch.long)]
    return (*out, list(splits[0].classes))


def _celeba(root: Path, config: ImageDataConfig):
    """CelebA aligned faces, centre-cropped to 108x108 then resized: the usual DCGAN-CelebA
    preprocessing (the DCGAN authors' TensorFlow code crops 108 before resizing to 64)."""
    import torchvision
    from torchvision.transforms import v2

    crop = v2.Compose([v2.PILToTensor(), v2.CenterCrop(108)])
    out = []
    for split in ("train", "test"):
        dataset = torchvision.datasets.CelebA(
            str(root), split=split, target_type=[], transform=crop, download=config.download
        )
        count = len(dataset) if config.max_train is None else min(len(dataset), config.max_train)
        images = torch.stack(
            [_prepare(dataset[i][0][None], config.image_size, 3)[0] for i in range(count)]
        )
        out += [images, torch.full((count,), -1, dtype=torch.long)]
    return (*out, [])


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format: magic, dims, big-endian sizes, uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path.name} is not a uint8 IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(folder: Path, prefix: str, kind: str) -> Path | None:
    for name in (f"{prefix}-{kind}", f"{prefix}-{kind}.gz"):
        if (folder / name).exists():
            return folder / name
    return None


def _mnist_idx(config: ImageDataConfig):
    folder = resolve_path(str(config.path))
    kinds = {"images": "images-idx3-ubyte", "labels": "labels-idx1-ubyte"}
    files = {
        (prefix, k): _find_idx(folder, prefix, name)
        for prefix in ("train", "t10k")
        for k, name in kinds.items()
    }
    test_images, test_labels = files[("t10k", "images")], files[("t10k", "labels")]
    if test_images is None or test_labels is None:
        raise DataError(
            f"no t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) in {folder}; "
            + HOW_TO_GET["mnist_idx"],
            key="data.path",
        )
    images = torch.as_tensor(_read_idx(test_images).copy())[:, None]
    labels = torch.as_tensor(_read_idx(test_labels).astype(np.int64))
    classes = [str(d) for d in range(10)]
    if files[("train", "images")] is not None and files[("train", "labels")] is not None:
        train = torch.as_tensor(_read_idx(files[("train", "images")]).copy())[:, None]
        train_labels = torch.as_tensor(_read_idx(files[("train", "labels")]).astype(np.int64))
        return train, train_labels, images, labels, classes
    count = config.idx_train_count
    if not 0 < count < len(images):
        raise ValueError(f"idx_train_count must be in 1..{len(images) - 1}, got {count}")
    return images[:count], labels[:count], images[count:], labels[count:], classes


def _decode_image(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image.convert("RGB"))


def _read_blobs(config: ImageDataConfig, path: Path) -> dict[tuple[str, ...], bytes]:
    """Every image file's bytes, keyed by its path parts (decoding comes later, and only for
    the images a run uses)."""
    blobs: dict[tuple[str, ...], bytes] = {}
    if config.source == "folder":
        if not path.is_dir():
            raise DataError(f"{path} is not a folder; {HOW_TO_GET['folder']}", key="data.path")
        for file in path.rglob("*"):
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                blobs[file.relative_to(path).parts] = file.read_bytes()
    else:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # one streaming pass: gzip cannot seek cheaply
                if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                    blobs[Path(member.name).parts] = archive.extractfile(member).read()
    if not blobs:
        raise DataError(f"no images found in {path}; {HOW_TO_GET[config.source]}", key="data.path")
    # Drop a common leading folder (archives often hold "cifar10/train/...").
    while len({parts[0] for parts in blobs}) == 1 and min(map(len, blobs)) > 2:
        blobs = {parts[1:]: blob for parts, blob in blobs.items()}
    return blobs


def _labeled_files(config: ImageDataConfig):
    """Folder or archive: ``[train|test/]class/name`` -> images and class labels."""
    path = resolve_path(str(config.path))
    blobs = _read_blobs(config, path)
    names = sorted(blobs)
    has_splits = {parts[0] for parts in names} >= {"train", "test"}
    class_of = {n: (n[-2] if len(n) >= (3 if has_splits else 2) else "") for n in names}
    classes = sorted(set(class_of.values()))
    splits: dict[str, list[tuple[str, ...]]] = {"train": [], "test": []}
    for index, name in enumerate(names):
        held_out = index % config.holdout_every == 0
        split = name[0] if has_splits else ("test" if held_out else "train")
        if split in splits:
            splits[split].append(name)
    out = []
    for split, limit in (("train", config.max_train), ("test", config.max_test)):
        if not splits[split]:
            raise DataError(f"no {split} images in {path}", key="data.path")
        labels = torch.tensor([classes.index(class_of[n]) for n in splits[split]])
        keep = _balanced_first(labels, limit)
        arrays = [_decode_image(blobs[splits[split][i]]) for i in keep.tolist()]
        if len({a.shape for a in arrays}) > 1:  # mixed sizes: resize each before stacking
            images = torch.stack(
                [
                    _prepare(torch.as_tensor(a).permute(2, 0, 1)[None], config.image_size, 3)[0]
                    for a in arrays
                ]
            )
        else:
            images = torch.as_tensor(np.stack(arrays)).permute(0, 3, 1, 2)
        out += [images.contiguous(), labels[keep]]
    return (*out, [c or "all" for c in classes])


# --- run state: data order and random number generators (checkpointed with each run) ----------


class DataOrder:
    """Mini-batch indices over ``count`` items, a fresh permutation each epoch.

    Each epoch's permutation comes from its own generator seeded by (seed, epoch), so the whole
    order is a pure function of (seed, epoch, position): saving those two numbers is enough for
    a resumed run to draw the very batches the uninterrupted run would have drawn.
    """

    def __init__(self, count: int, batch_size: int, seed: int, device: str = "cpu"):
        self.count, self.batch_size, self.seed, self.device = count, batch_size, seed, device
        self.epoch, self.position = 0, 0
        self._permutation: torch.Tensor | None = None

    def _current(self) -> torch.Tensor:
        if self._permutation is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._permutation = torch.randperm(self.count, generator=generator).to(self.device)
        return self._permutation

    def next(self) -> torch.Tensor:
        """The next batch's indices (drops an epoch's incomplete last batch)."""
        if self.position + self.batch_size > self.count:
            self.epoch, self.position, self._permutation = self.epoch + 1, 0, None
        indices = self._current()[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return indices

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._permutation = state["epoch"], state["position"], None


def seed_orders(
    image_count: int, batch_size: int, seeds: list[int], device: str, states: list | None
) -> list[DataOrder]:
    """Each seed's data order, at its checkpoint's position where it has one (DCGAN and VAE).

    :param states: each seed's gans/train_state.py TrainState, or None.
    """
    orders = [DataOrder(image_count, batch_size, seed, device) for seed in seeds]
    for order, state in zip(orders, states or [None] * len(seeds), strict=True):
        if state is not None:
            order.load_state_dict(state.data_order)
    return orders
