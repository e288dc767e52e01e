"""The feature network for offline IS/FID: a classifier trained on the dataset's own training split.

No Inception-v3 weights exist offline, so the suite scores generated images with a classifier it
trains itself (a small ResNet for RGB data, a small CNN for grey 28/32 px data): IS from its
logits, FID from its penultimate features. Such scores compare arms with each other; they are
NOT on the Inception scale and are never reported as Inception scores (see gans/scores.py).

Train and cache one (the runs then load it in a second)::

    python -m gans.classifier cifar10            # ../shared/data/cifar10-jpeg.tar.gz
    python -m gans.classifier mnist              # ../shared/data/mnist-t10k (8k train / 2k test)
    python -m gans.classifier cifar10 --epochs 30 --device cuda

The cache file (``<cache_dir>/classifiers/<dataset>-<size>px-<channels>ch-<arch>.pt``) holds the
weights, the test accuracy, the training time and the settings.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gans.data import ImageData, ImageDataConfig, cache_root, load_image_data, random_hflip
from suite.paths import PROJECT_ROOT

# name -> (stage widths, residual blocks per stage). Written by hand; `resnet` is the CIFAR-10
# network (a narrow ResNet-8 after He et al. 2016 §4.2), `cnn` the grey-image one, `tiny` the
# seconds-to-train network of smoke runs.
ARCHITECTURES: dict[str, tuple[tuple[int, ...], int]] = {
    "resnet": ((32, 64, 128), 1),
    "resnet_small": ((16, 32, 64), 1),  # a quarter of the FLOPs, for CPU-only machines
    "cnn": ((32, 64, 128), 0),
    "tiny": ((8, 16), 0),
}


class Block(nn.Module):
    """Basic residual block (He et al. 2016): two 3x3 convolutions plus the shortcut."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class Classifier(nn.Module):
    """Conv stages (stride 2 between them), global average pooling, a linear head.

    Reads uint8 images (N x C x H x W); ``logits_and_features`` gives the logits (for IS) and the
    pooled penultimate features (for FID).
    """

    def __init__(self, arch: str, in_channels: int, num_classes: int):
        super().__init__()
        widths, blocks = ARCHITECTURES[arch]
        layers: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers += [
                nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            layers += [Block(width) for _ in range(blocks)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(previous, num_classes)
        self.feature_dim = previous

    def logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float().div(127.5).sub(1.0)
        features = self.body(x).mean(dim=(2, 3))
        return self.head(features), features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features(images)[0]


@dataclass
class ClassifierSettings:
    """How the feature classifier is trained (SGD + Nesterov momentum, one-cycle schedule)."""

    arch: str = "resnet"
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    """peak lr of the one-cycle schedule (Smith & Topin 2019); SGD momentum 0.9, Nesterov."""
    weight_decay: float = 5e-4
    """the CIFAR ResNet value of He et al. 2016 §4.2 is 1e-4; 5e-4 suits short schedules."""
    max_steps: int | None = None
    """stop after this many steps (tiny classifiers of smoke runs)."""
    seed: int = 0


def default_settings(data: ImageData) -> ClassifierSettings:
    rgb = data.train.shape[1] == 3
    return ClassifierSettings(arch="resnet" if rgb else "cnn", epochs=15 if rgb else 8)


def tiny_settings() -> ClassifierSettings:
    return ClassifierSettings(arch="tiny", epochs=1000, batch_size=64, lr=0.05, max_steps=40)


def random_crop(images: torch.Tensor, padding: int, generator=None) -> torch.Tensor:
    """Random translations by up to ``padding`` pixels (zero fill), one per image, vectorized."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000):
    model.eval()
    correct = sum(
        int((model(x).argmax(1) == y).sum())
        for x, y in zip(images.split(batch), labels.split(batch), strict=True)
    )
    return correct / max(1, len(labels))


def train_classifier(
    data: ImageData, settings: ClassifierSettings, device: str = "cpu", log=print
) -> tuple[Classifier, dict[str, Any]]:
    """Train on ``data.train``, measure on ``data.test``; returns the model and its record.

    Runs inside a forked RNG: training a score classifier in the middle of a GAN run must not
    move that run's random numbers (a resumed run would otherwise diverge from the original).
    """
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(settings.seed)
        return _train_classifier(data, settings, device, log)


def _train_classifier(data: ImageData, settings: ClassifierSettings, device: str, log):
    started = time.perf_counter()
    model = Classifier(settings.arch, data.train.shape[1], data.num_classes).to(device)
    train, labels = data.train.to(device), data.train_labels.to(device)
    steps_per_epoch = max(1, len(train) // settings.batch_size)
    total = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=settings.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=total)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    rgb = train.shape[1] == 3
    step = 0
    while step < total:
        model.train()
        order = torch.randperm(len(train), device=device, generator=generator)
        for batch in order[: steps_per_epoch * settings.batch_size].split(settings.batch_size):
            images = random_crop(train[batch], 2 if not rgb else 4, generator)
            if rgb:  # left-right flips keep CIFAR classes; they would not keep digits
                images = random_hflip(images, generator)
            with torch.autocast("cuda", torch.bfloat16, enabled=device == "cuda"):
                loss = F.cross_entropy(model(images), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % steps_per_epoch == 0 or step == total:
                log(f"classifier step {step}/{total}: loss {loss.item():.3f}")
            if step >= total:
                break
    test_accuracy = accuracy(model, data.test.to(device), data.test_labels.to(device))
    record = {
        "arch": settings.arch,
        "dataset": data.name,
        "in_channels": int(data.train.shape[1]),
        "image_size": int(data.train.shape[-1]),
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "train_images": len(train),
        "test_images": len(data.test),
        "test_accuracy": test_accuracy,
        "train_seconds": time.perf_counter() - started,
        "steps": step,
        "device": device,
    }
    log(
        f"classifier {settings.arch} on {data.name}: test accuracy {test_accuracy:.4f} "
        f"({len(data.test)} images), trained in {record['train_seconds']:.0f} s on {device}"
    )
    return model.eval(), record


COMMITTED = PROJECT_ROOT / "records" / "feature-networks"
"""Classifiers committed beside the records they scored: training is not reproducible across
CPUs (the same seed gave 82.45% test accuracy on one machine and 82.80% on another), so a new
machine loads the committed weights rather than training other ones. A run names the weights'
digest in each score's scale (gans/scores.py Scorer.metric_scales)."""


def cache_path(config: ImageDataConfig, arch: str) -> Path:
    name = f"{config.name}-{config.image_size}px-{config.channels}ch-{arch}.pt"
    return cache_root(config) / "classifiers" / name


def save_classifier(model: Classifier, record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"record": record, "state_dict": state}, temporary)
    temporary.replace(path)


def load_classifier(path: Path, device: str) -> tuple[Classifier, dict[str, Any]]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    record = saved["record"]
    model = Classifier(record["arch"], record["in_channels"], record["num_classes"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), record


def _found(path: Path, folder: Path) -> Path | None:
    """``path``'s name in ``folder``, else another architecture's file for the same dataset
    there (resnet_small on CPU), else None."""
    exact = folder / path.name
    if exact.exists():
        return exact
    return next(iter(sorted(folder.glob(f"{path.stem.rsplit('-', 1)[0]}-*.pt"))), None)


def cached_or_trained(
    config: ImageDataConfig, device: str, log=print, settings: ClassifierSettings | None = None
) -> tuple[Classifier, dict[str, Any]]:
    """The cached classifier for this dataset, else the committed one (COMMITTED), else one
    trained now on its full training split (whatever ``max_train`` the run uses) and cached."""
    full = replace(config, max_train=None, max_test=None)
    arch = settings.arch if settings else ("resnet" if full.channels == 3 else "cnn")
    path = cache_path(full, arch)
    path = _found(path, path.parent) or _found(path, COMMITTED) or path
    if path.exists():
        model, record = load_classifier(path, device)
        record["cache_file"] = str(path)
        return model, record
    data = load_image_data(full, log)  # only now: the full training split is large
    settings = settings or default_settings(data)
    path = cache_path(full, settings.arch)
    log(f"no cached classifier at {path}: training one now (epochs {settings.epochs})")
    model, record = train_classifier(data, settings, device, log)
    save_classifier(model, record, path)
    record["cache_file"] = str(path)
    return model, record


# --- command line ------------------------------------------------------------------------------

PRESETS: dict[str, ImageDataConfig] = {
    "cifar10": ImageDataConfig(
        source="archive", path="../shared/data/cifar10-jpeg.tar.gz", image_size=32, channels=3
    ),
    "cifar10-torchvision": ImageDataConfig(
        source="cifar10", path=None, download=True, image_size=32, channels=3
    ),
    "mnist": ImageDataConfig(
        source="mnist_idx", path="../shared/data/mnist-t10k", image_size=28, channels=1
    ),
    "mnist32": ImageDataConfig(
        source="mnist_idx", path="../shared/data/mnist-t10k", image_size=32, channels=1
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gans.classifier", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dataset", choices=list(PRESETS))
    parser.add_argument("--epochs", type=int, help="default: 15 (RGB) or 8 (grey)")
    parser.add_argument("--arch", choices=list(ARCHITECTURES), help="default: resnet (RGB), cnn")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--cache-dir", help="default $SUITE_CACHE_DIR or ~/.cache/suite")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--force", action="store_true", help="retrain even if cached")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = replace(PRESETS[args.dataset], cache_dir=args.cache_dir)
    data = load_image_data(config)
    settings = default_settings(data)
    if args.epochs:
        settings = replace(settings, epochs=args.epochs)
    if args.arch:
        settings = replace(settings, arch=args.arch)
    path = cache_path(config, settings.arch)
    if path.exists() and not args.force:
        _, record = load_classifier(path, device)
        print(f"cached: {path}: test accuracy {record['test_accuracy']:.4f} (--force retrains)")
        return 0
    model, record = train_classifier(data, settings, device)
    save_classifier(model, record, path)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
