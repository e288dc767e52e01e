"""The reference set scores are measured against (issue 13): a seeded class-balanced sample, never
the first N images of a class-sorted split; its class counts, real-data IS and FID floor in every
result; caches keyed by the sampling scheme; and the calibration ladder of degraded real data."""

from __future__ import annotations

import math

import pytest
import torch

from gans.data import ImageData
from gans.scores import (
    REFERENCE_SAMPLING,
    FeatureNetwork,
    Scorer,
    _class_quota,
    calibration_summary,
    degrade,
    reference_indices,
    reference_set,
    spearman,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = 10


def sorted_labels(per_class: int = 100) -> torch.Tensor:
    """Labels of a class-sorted split, as the CIFAR-10 archive is read: 0,0,...,1,1,...,9."""
    return torch.arange(CLASSES).repeat_interleave(per_class)


def class_images(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """8x8 RGB images whose red level says the class (25 * label) and whose green and blue
    channels are noise with structure (so blur and noise change features)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (len(labels), 3, 8, 8), generator=generator, dtype=torch.uint8)
    images[:, 0] = (25 * labels)[:, None, None].to(torch.uint8)
    return images


def oracle_network() -> FeatureNetwork:
    """Reads the class from the red channel (confident logits) and uses per-channel means and
    a smoothness measure as features: a stand-in for a classifier that recognizes every class."""

    def extract(images):
        x = images.float()
        label = (x[:, 0].mean(dim=(1, 2)) / 25).round().long().clamp(0, CLASSES - 1)
        logits = torch.full((len(x), CLASSES), -20.0)
        logits[torch.arange(len(x)), label] = 20.0
        roughness = (x[..., 1:] - x[..., :-1]).abs().mean(dim=(2, 3))
        return logits, torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), roughness], dim=1)

    return FeatureNetwork("classifier", "oracle (test), not Inception", extract, "none")


def toy_data(per_class: int = 100) -> ImageData:
    train_labels, test_labels = sorted_labels(per_class), sorted_labels(per_class // 2)
    return ImageData(
        class_images(train_labels, 0),
        train_labels,
        class_images(test_labels, 1),
        test_labels,
        [f"c{i}" for i in range(CLASSES)],
        "toy",
        "class-sorted toy images",
    )


def test_reference_sample_is_class_balanced_seeded_and_shuffled():
    labels = sorted_labels()
    chosen = reference_indices(labels, 250)
    assert len(chosen) == 250 and len(set(chosen.tolist())) == 250
    counts = torch.bincount(labels[chosen], minlength=CLASSES).tolist()
    assert sorted(counts) == [25] * CLASSES  # the first 250 would be classes 0-2 only
    assert torch.equal(chosen, reference_indices(labels, 250))  # seeded: one set for every run
    assert not torch.equal(chosen, reference_indices(labels, 250, seed=1))
    # Shuffled: every consecutive tenth (an IS split) holds several classes, not one.
    assert all(len(labels[part].unique()) > 3 for part in chosen.split(25))
    # The remainder of an uneven count goes one per class: counts differ by at most one.
    uneven = torch.bincount(labels[reference_indices(labels, 255)], minlength=CLASSES)
    assert int(uneven.sum()) == 255 and int(uneven.max() - uneven.min()) == 1


def test_reference_sample_never_moves_the_training_rng():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    reference_indices(sorted_labels(), 300)
    reference_set(toy_data(), "train", 300, 100)
    assert torch.equal(torch.rand(4), expected)


def test_a_small_class_gives_all_it_has_and_the_others_fill_up():
    generator = torch.Generator().manual_seed(0)
    quota = _class_quota([3, 100, 100], 60, generator)
    assert quota[0] == 3 and sorted(quota[1:]) == [28, 29]
    assert sum(_class_quota([3, 100, 100], 203, generator)) == 203
    labels = torch.cat([torch.zeros(3), torch.ones(100), torch.full((100,), 2)]).long()
    counts = torch.bincount(labels[reference_indices(labels, 60)]).tolist()
    assert counts[0] == 3 and sum(counts) == 60 and abs(counts[1] - counts[2]) <= 1


def test_unlabeled_images_are_sampled_uniformly():
    labels = torch.full((500,), -1)
    chosen = reference_indices(labels, 100)
    assert len(set(chosen.tolist())) == 100 and int(chosen.max()) > 300  # not the first 100


def test_real_data_is_of_the_balanced_reference_reflects_every_class():
    data, network = toy_data(), oracle_network()
    scorer = Scorer(network, reference_set(data, "train", 500, 200), "train", "toy")
    # The old reference, data.train[:500] of a class-sorted split: 5 classes, one per IS split.
    biased = Scorer(network, data.train[:500], "train", "toy")
    assert biased.real_is == pytest.approx(1.0, abs=1e-6)
    # Each IS split (50 shuffled images) holds every class, in roughly equal shares.
    assert 8.5 < scorer.real_is <= CLASSES
    details = scorer.details(200)
    assert details["reference_class_counts"] == {f"c{i}": 50 for i in range(CLASSES)}
    assert details["reference_sampling"].startswith(REFERENCE_SAMPLING)
    floor = details["real_fid_floor"]
    assert floor["split"] == "test" and floor["samples"] == 200 and floor["is"] > 7
    assert 0 < floor["fid"] < scorer.score(data.test[:200])["eval/fid_classifier"]
    summary = scorer.summary()
    assert (
        "500 train images" in summary["reference_set"] and "10 classes" in summary["reference_set"]
    )
    assert "FID floor" in summary["reference_set"] and "Spearman" in summary["score_calibration"]


def test_statistics_caches_are_keyed_by_the_sampling_scheme(tmp_path):
    data, network = toy_data(), oracle_network()
    network.cache_key = "oracle-1"
    scorer = Scorer(network, reference_set(data, "train", 300, 100), "train", "toy", tmp_path)
    [cached] = (tmp_path / "stats").iterdir()
    assert REFERENCE_SAMPLING in cached.name and "-300-" in cached.name
    # A cache of the old scheme (first N, named without the scheme) sits next to it, unread.
    old = tmp_path / "stats" / "oracle-1-toy-train-300.pt"
    old.write_bytes(b"not statistics")
    calls = []
    extract = network.extract
    network.extract = lambda images: calls.append(len(images)) or extract(images)
    again = Scorer(network, reference_set(data, "train", 300, 100), "train", "toy", tmp_path)
    assert calls == []  # everything from the cache: statistics, floor, ladder
    assert again.real_is == scorer.real_is and again.floor == scorer.floor
    assert again.calibration == scorer.calibration


def test_the_calibration_ladder_ranks_degraded_real_data_worse():
    data, network = toy_data(), oracle_network()
    scorer = Scorer(network, reference_set(data, "train", 500, 300), "train", "toy")
    calibration = scorer.calibration
    families = [level["family"] for level in calibration["levels"]]
    assert families[0] == "real" and families.count("noise") == 3
    assert families.count("blur") == 3 and families.count("mode_drop") == 3
    assert calibration["spearman"] == {"noise": 1.0, "blur": 1.0, "mode_drop": 1.0}
    mode_drop = [level for level in calibration["levels"] if level["family"] == "mode_drop"]
    # Dropping classes lowers the oracle's IS: 5, 2, then 1 class left.
    assert [round(level["is"]) for level in mode_drop] == [5, 2, 1]
    no_ladder = Scorer(network, reference_set(data, "train", 500, 300), "train", "toy",
                       calibrate=False)  # fmt: skip
    assert no_ladder.calibration == {} and no_ladder.floor == scorer.floor


def test_mode_dropping_keeps_only_the_kept_classes():
    labels = sorted_labels(20)
    images = class_images(labels)
    dropped = degrade(images, labels, "mode_drop", 0.2, seed=0)
    reds = (dropped[:, 0].float().mean(dim=(1, 2)) / 25).round().long()
    assert set(reds.tolist()) == {0, 1}
    kept = labels < 2
    assert torch.equal(dropped[kept], images[kept])  # images of kept classes stay in place
    with pytest.raises(ValueError, match="valid: noise, blur, mode_drop"):
        degrade(images, labels, "jpeg", 0.5, seed=0)


def test_spearman_by_hand_and_the_summary_flags_a_wrong_order():
    assert spearman([0, 1, 2, 3], [1.0, 2.0, 5.0, 9.0]) == pytest.approx(1.0)
    assert spearman([0, 1, 2, 3], [9.0, 5.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # Ranks (1, 2, 3, 4) vs (1, 3, 2, 4): 1 - 6 * 2 / (4 * 15) = 0.8.
    assert spearman([0, 1, 2, 3], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert math.isnan(spearman([0, 1, 2], [1.0, 1.0, 1.0]))
    levels = [
        {"family": "real", "severity": 0, "fid": 1.0},
        {"family": "noise", "severity": 1, "fid": 2.0},
        {"family": "noise", "severity": 2, "fid": 3.0},
        {"family": "blur", "severity": 1, "fid": 4.0},
        {"family": "blur", "severity": 2, "fid": 0.5},  # a measure blind to heavy blur
    ]
    summary = calibration_summary(levels)
    assert summary["spearman"]["noise"] == pytest.approx(1.0)
    assert summary["spearman"]["blur"] == pytest.approx(-0.5)
    assert summary["spearman_min"] == pytest.approx(-0.5)
