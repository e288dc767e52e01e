"""Image sources: a folder, the archive layout (built here and the offline CIFAR-10 copy), MNIST
IDX files, the decoded-image cache, clear errors, and the checkpointed data order and RNGs."""

from __future__ import annotations

import io
import random
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from gans import data as data_module
from gans.data import (
    DataError,
    DataOrder,
    ImageDataConfig,
    load_image_data,
    to_signed_range,
    to_uint8,
)
from tests.helpers import SHARED_DATA, needs_shared

# (class, index) -> a solid colour, so every decoded pixel can be checked by hand.
COLOURS = {("cat", 0): (255, 0, 0), ("cat", 1): (0, 255, 0), ("dog", 0): (0, 0, 255)}


def png_bytes(colour: tuple[int, int, int], size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")  # lossless
    return buffer.getvalue()


def test_folder_with_train_and_test_splits(tmp_path):
    for split in ("train", "test"):
        for (label, index), colour in COLOURS.items():
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.png").write_bytes(png_bytes(colour))
    config = ImageDataConfig(
        source="folder", path=str(tmp_path / "images"), image_size=28, cache_dir=str(tmp_path)
    )
    data = load_image_data(config, log=lambda m: None)
    assert data.classes == ["cat", "dog"]
    assert data.train.shape == (3, 3, 28, 28) and data.train.dtype == torch.uint8
    assert data.train_labels.tolist() == [0, 0, 1]  # sorted: cat/0, cat/1, dog/0
    # Solid colours survive the antialiased 8 -> 28 resize exactly.
    assert data.train[0, :, 5, 5].tolist() == [255, 0, 0]
    assert data.train[2, :, 5, 5].tolist() == [0, 0, 255]


def test_folder_without_splits_holds_out_every_nth_image(tmp_path):
    for index in range(10):
        folder = tmp_path / "mine" / "only"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:02d}.png").write_bytes(png_bytes((index * 20, 0, 0), size=32))
    config = ImageDataConfig(
        source="folder", path=str(tmp_path / "mine"), holdout_every=5, cache_dir=str(tmp_path)
    )
    data = load_image_data(config, log=lambda m: None)
    assert len(data.train) == 8 and len(data.test) == 2
    assert data.test[:, 0, 0, 0].tolist() == [0, 100]  # images 00 and 05


def test_archive_layout_with_a_leading_folder_and_balanced_limits(tmp_path):
    archive = tmp_path / "pictures.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for label, colour in (("ant", (10, 20, 30)), ("bee", (200, 100, 0))):
                for index in range(3):
                    blob = png_bytes(colour, size=32)
                    info = tarfile.TarInfo(f"pictures/{split}/{label}/{index}.png")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    config = ImageDataConfig(
        source="archive", path=str(archive), max_train=4, cache_dir=str(tmp_path)
    )
    data = load_image_data(config, log=lambda m: None)
    assert data.name == "pictures" and data.classes == ["ant", "bee"]
    assert data.train_labels.tolist() == [0, 0, 1, 1]  # two of each class, in file order
    assert len(data.test) == 6
    assert data.train[0, :, 0, 0].tolist() == [10, 20, 30]
    assert data.train[3, :, 31, 31].tolist() == [200, 100, 0]


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "images" / "a"
    folder.mkdir(parents=True)
    for index in range(4):
        (folder / f"{index}.png").write_bytes(png_bytes((index, 0, 0), size=32))
    config = ImageDataConfig(
        source="folder", path=str(tmp_path / "images"), holdout_every=2, cache_dir=str(tmp_path)
    )
    first = load_image_data(config, log=lambda m: None)
    assert list((tmp_path / "images").parent.glob("images/*.pt"))

    def no_decoding(config):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data_module, "_decode", no_decoding)
    second = load_image_data(config, log=lambda m: None)
    assert torch.equal(first.train, second.train) and torch.equal(first.test, second.test)


def test_missing_data_names_the_path_and_how_to_get_it(tmp_path):
    config = ImageDataConfig(source="archive", path=str(tmp_path / "nope.tar.gz"))
    with pytest.raises(DataError) as error:
        load_image_data(config)
    message = str(error.value)
    assert str(tmp_path / "nope.tar.gz") in message and "cifar10-jpeg.tar.gz" in message
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    config = ImageDataConfig(source="archive", path=str(tmp_path / "broken.tar.gz"))
    with pytest.raises(DataError, match="cannot read archive data"):
        load_image_data(config)
    config = ImageDataConfig(source="mnist_idx", path=str(tmp_path))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_image_data(config)


@needs_shared
def test_offline_cifar10_archive_loads(tmp_path_factory):
    # The limits of the DCGAN smoke budget, and a session-wide cache: test_dcgan's CLI run then
    # reads these decoded images instead of reading the 60k-file archive again.
    config = ImageDataConfig(
        source="archive",
        path=str(SHARED_DATA / "cifar10-jpeg.tar.gz"),
        max_train=512,
        max_test=256,
        cache_dir=str(tmp_path_factory.getbasetemp() / "suite-cache"),
    )
    data = load_image_data(config, log=lambda m: None)
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert data.train.shape == (512, 3, 32, 32)
    assert torch.bincount(data.train_labels).tolist() == [52, 52] + [51] * 8
    assert torch.bincount(data.test_labels).tolist() == [26] * 6 + [25] * 4
    assert 60 < data.train.float().mean() < 200  # real photographs, not blank


@needs_shared
def test_offline_mnist_idx_split(tmp_path):
    config = ImageDataConfig(
        source="mnist_idx",
        path=str(SHARED_DATA / "mnist-t10k"),
        image_size=28,
        channels=1,
        cache_dir=str(tmp_path),
    )
    data = load_image_data(config, log=lambda m: None)
    assert data.train.shape == (8000, 1, 28, 28) and data.test.shape == (2000, 1, 28, 28)
    assert data.train_labels[:5].tolist() == [7, 2, 1, 0, 4]  # the MNIST test set's first digits
    assert int(data.train.max()) == 255 and int(data.train[0, 0, 0, 0]) == 0


def test_range_conversions_round_trip():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_signed_range(images)), images)
    assert to_signed_range(images).min() == -1 and to_signed_range(images).max() == 1


def test_data_order_resumes_with_the_same_batches():
    order = DataOrder(10, 4, seed=3)
    batches = [order.next().tolist() for _ in range(3)]
    assert sorted(batches[0] + batches[1]) != list(range(10))  # 2 batches of 4 of 10 items
    assert len(set(batches[0] + batches[1])) == 8  # no repeats within an epoch
    resumed = DataOrder(10, 4, seed=3)
    saved = DataOrder(10, 4, seed=3)
    saved.next()
    resumed.load_state_dict(saved.state_dict())
    assert [resumed.next().tolist() for _ in range(2)] == batches[1:]


def test_rng_state_round_trip():
    """The run context's generator states (the one implementation; checkpoints save them)."""
    from suite.run.context import rng_state, set_rng_state

    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]
