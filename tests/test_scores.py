"""IS and FID on known inputs, collapse detection, and the labels that keep classifier scores
from being read as Inception scores."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from gans.classifier import Classifier, tiny_settings, train_classifier
from gans.data import ImageData, ImageDataConfig
from gans.scores import (
    Scorer,
    build_scorer,
    classifier_network,
    collapse_statistics,
    effective_classes,
    frechet_distance,
    inception_network,
    inception_score,
    weights_digest,
)


def score_config(scores: str, data: ImageDataConfig, reference_samples: int = 50):
    """The scoring fields of a dcgan.Config."""
    from types import SimpleNamespace

    return SimpleNamespace(
        scores=scores,
        classifier="tiny",
        data=data,
        reference_split="train",
        reference_samples=reference_samples,
        eval_samples=32,
        calibration=True,
    )


def run_stub(log, device: str = "cpu", seed: int = 0):
    """What build_scorer reads of a RunContext (no run directory: nothing kept)."""
    from types import SimpleNamespace

    return SimpleNamespace(device=device, seed=seed, log=log, run_dir=None)


# Runs use one torch thread each (suite run --threads 1); so do these tests (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_inception_score_of_confident_even_predictions_is_the_class_count():
    logits = torch.full((40, 4), -1e4)
    logits[torch.arange(40), torch.arange(40) % 4] = 1e4  # one-hot, 10 per class
    assert inception_score(logits, splits=1)[0] == pytest.approx(4.0)
    assert inception_score(logits, splits=10) == (pytest.approx(4.0), pytest.approx(0.0))


def test_inception_score_of_identical_predictions_is_one():
    logits = torch.tensor([[2.0, 0.5, -1.0]]).repeat(30, 1)
    assert inception_score(logits, splits=3)[0] == pytest.approx(1.0)


def test_inception_score_by_hand():
    # Two images, p(y|x) = (1, 0) and (1/2, 1/2): p(y) = (3/4, 1/4).
    # KL1 = log(4/3); KL2 = 1/2 log(2/3) + 1/2 log(2); IS = exp(mean).
    logits = torch.log(torch.tensor([[1.0, 1e-30], [0.5, 0.5]]))
    expected = np.exp((np.log(4 / 3) + 0.5 * np.log(2 / 3) + 0.5 * np.log(2)) / 2)
    assert inception_score(logits, splits=1)[0] == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_by_hand():
    # 1-D: (0 - 1)^2 + 1 + 4 - 2 sqrt(1 * 4) = 2.
    assert frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2)
    # Diagonal 2-D: |mu|^2 = 2, sum (sqrt(a) - sqrt(b))^2 = (1 - 3)^2 + (2 - 2)^2 = 4.
    value = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.ones(2), np.diag([9.0, 4.0]))
    assert value == pytest.approx(6.0)
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.ones(2), sigma, np.ones(2), sigma) == pytest.approx(0, abs=1e-9)


def noise_images(count: int, seed: int) -> torch.Tensor:
    """Images with structure: a random-intensity blob on a random background."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 120, (count, 3, 16, 16), generator=generator, dtype=torch.uint8)
    images[:, :, 4:12, 4:12] += torch.randint(0, 130, (count, 3, 1, 1), generator=generator).to(
        torch.uint8
    )
    return images


def fixed_network():
    torch.manual_seed(0)
    model = Classifier("tiny", 3, 5).eval()
    record = {"dataset": "noise", "arch": "tiny", "test_accuracy": 0.25, "image_size": 16}
    return classifier_network(model, record, tiny=True)


def test_the_classifiers_weights_digest_is_recorded_and_tells_weights_apart():
    network = fixed_network()
    digest = network.details["weights_sha256"]
    assert len(digest) == 16 and digest == fixed_network().details["weights_sha256"]
    torch.manual_seed(0)
    model = Classifier("tiny", 3, 5).eval()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3  # one weight moved
    assert weights_digest(model) != digest


def test_identical_sets_give_fid_zero_and_degenerate_images_score_worse():
    network = fixed_network()
    real = noise_images(400, seed=1)
    scorer = Scorer(network, real, "train", "noise")
    same = scorer.score(real)
    assert same["eval/fid_classifier"] == pytest.approx(0.0, abs=1e-6)
    assert same["eval/is_classifier"] == pytest.approx(scorer.real_is)
    other_real = scorer.score(noise_images(400, seed=2))
    constant = scorer.score(torch.full((400, 3, 16, 16), 128, dtype=torch.uint8))
    assert constant["eval/fid_classifier"] > 10 * other_real["eval/fid_classifier"]
    assert constant["eval/is_classifier"] == pytest.approx(1.0)
    assert other_real["eval/is_classifier"] > 1.0
    # One image repeated falls in one class (the counts: test_effective_classes_by_hand).
    assert constant["eval/classes_classifier"] == 1.0


def test_scores_are_labeled_as_not_inception():
    network = fixed_network()
    scorer = Scorer(network, noise_images(50, seed=1), "test", "noise")
    details = scorer.details(samples=123)
    assert "not Inception" in details["is_name"] and "not Inception" in details["fid_name"]
    assert "25.0%" in details["feature_network"]
    assert details["samples"] == 123 and details["reference_split"] == "test"
    assert details["reference_images"] == 50 and details["resizing"].startswith("none")
    assert scorer.keys == ("eval/is_classifier", "eval/fid_classifier")
    # Each score's scale names the weights, so the judge never compares two classifiers' scores.
    scale = f"classifier-features (tiny, weights {network.details['weights_sha256']})"
    keys = ("eval/is_classifier", "eval/fid_classifier", "eval/classes_classifier")
    assert scorer.metric_scales() == dict.fromkeys(keys, scale)


def one_hot_logits(classes: list[int], k: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), k).float() * 5.0


def test_effective_classes_by_hand():
    # All in one class: 1. Evenly over 4 of 10 classes: 4.
    assert effective_classes(one_hot_logits([3] * 8)) == pytest.approx(1.0)
    assert effective_classes(one_hot_logits([0, 1, 2, 9] * 10)) == pytest.approx(4.0)
    # Shares 1/2, 1/4, 1/4: entropy 1.5 ln 2, so 2 ** 1.5 classes.
    assert effective_classes(one_hot_logits([5, 5, 1, 7])) == pytest.approx(2**1.5)
    # Only the argmax counts, not how sure the classifier is.
    soft = one_hot_logits([0, 1, 2, 9] * 10) * 0.01 + 0.3
    assert effective_classes(soft) == pytest.approx(4.0)


def test_collapse_statistics():
    constant = torch.zeros(16, 3, 8, 8)
    assert collapse_statistics(constant)["collapsed"] == 1.0
    # Different images but each one flat: collapsed too (within-image variation is zero).
    flat = torch.linspace(-1, 1, 16).view(16, 1, 1, 1).expand(16, 3, 8, 8)
    assert collapse_statistics(flat)["collapsed"] == 1.0
    varied = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert collapse_statistics(varied)["collapsed"] == 0.0


def tiny_data() -> ImageData:
    images = torch.cat([noise_images(64, 1), 255 - noise_images(64, 2)])
    labels = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    order = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    images, labels = images[order], labels[order]
    return ImageData(images[:96], labels[:96], images[96:], labels[96:], ["a", "b"], "toy", "toy")


def test_tiny_classifier_learns_an_easy_split_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    model, record = train_classifier(tiny_data(), tiny_settings(), log=lambda m: None)
    assert torch.equal(torch.rand(3), expected)
    assert record["test_accuracy"] >= 0.75 and record["arch"] == "tiny"
    assert model(tiny_data().test).shape == (32, 2)


def test_a_new_machine_loads_the_committed_classifier_not_a_new_one(tmp_path, monkeypatch):
    # Training is not reproducible across CPUs: with an empty cache, the committed weights are
    # loaded (no training, which would fail here: the data path does not exist).
    import gans.classifier as classifier

    config = ImageDataConfig(
        source="archive", path=str(tmp_path / "cifar10-jpeg.tar.gz"), channels=3
    )
    config = dataclasses.replace(config, cache_dir=str(tmp_path / "cache"))
    committed = tmp_path / "committed"
    torch.manual_seed(0)
    model = Classifier("tiny", 3, 10)
    record = {"arch": "tiny", "in_channels": 3, "num_classes": 10, "test_accuracy": 0.5}
    classifier.save_classifier(model, record, committed / "cifar10-jpeg-32px-3ch-tiny.pt")
    monkeypatch.setattr(classifier, "COMMITTED", committed)
    loaded, got = classifier.cached_or_trained(config, "cpu", settings=tiny_settings())
    assert got["cache_file"] == str(committed / "cifar10-jpeg-32px-3ch-tiny.pt")
    assert weights_digest(loaded) == weights_digest(model)
    # A classifier in this machine's cache comes first (one trained here with --force).
    classifier.save_classifier(model, record, classifier.cache_path(config, "tiny"))
    _, got = classifier.cached_or_trained(config, "cpu", settings=tiny_settings())
    assert got["cache_file"].startswith(str(tmp_path / "cache"))


def test_without_torch_fidelity_auto_falls_back_and_inception_is_an_error(tmp_path, monkeypatch):
    # torch-fidelity is in the test extra: hide it, as on a machine without the package.
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    config = ImageDataConfig(cache_dir=str(tmp_path))
    data = tiny_data()
    lines = []
    assert inception_network("cpu", log=lines.append) is None  # "auto" uses the classifier
    assert len(lines) == 1 and "needs torch-fidelity" in lines[0]
    with pytest.raises(RuntimeError, match="torch-fidelity"):
        build_scorer(score_config("inception", config), data, run_stub(lambda m: None))
