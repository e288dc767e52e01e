"""The Inception-v3 path of gans/scores.py (``scores: auto|inception``), run for real offline.

No Inception weights can be downloaded here, so a fixture writes a weights file of
torch-fidelity's own Inception-v3 (its architecture, state-dict format and file name) with a
fixed, seeded random initialization into a temporary torch hub cache,
``$TORCH_HOME/hub/checkpoints/``, where torch-fidelity looks before it downloads. The numbers
these weights give are NOT Inception scores and mean nothing as such: the tests check the
plumbing (the weights found, 1- and 3-channel images, the scorer, the trainer's keys and labels,
the errors without weights) and that our IS and FID formulas agree with torch-fidelity's own
``calculate_metrics`` on the same network and images.

Inception-v3 resizes every image to 299x299, about 0.25 s per image on one CPU thread, and FID
needs 2048 x 2048 eigendecompositions (torch-fidelity's ``np.linalg.eigvals`` alone takes 15-25 s
on a 2-core machine), so the image sets hold 8 images of 32x32 each; the default tests take about
45 s on 2 cores. The run through the CLI (two spawned runs, about a minute) is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from gans import dcgan
from gans.data import ImageDataConfig
from gans.scores import (
    Scorer,
    build_scorer,
    feature_statistics,
    frechet_distance,
    inception_network,
    inception_weights_file,
)
from suite.optimizers import OptimizerSpec
from suite.result import RunSpec
from suite.run.context import RunContext
from suite.schema import from_dict
from tests.helpers import needs_shared
from tests.test_dcgan import SPECS, toy_config, toy_data
from tests.test_scores import run_stub, score_config, tiny_data

torch_fidelity = pytest.importorskip("torch_fidelity")
inceptionv3 = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")

# Runs use one torch thread each (suite run --threads 1); so do these tests (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS_NAME = Path(urlparse(inceptionv3.URL_INCEPTION_V3).path).name
REPOSITORY = Path(__file__).resolve().parents[1]


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception-v3 state dict with seeded random values.

    Convolutions are He-normal (He et al. 2015, §2.2: the activations keep their scale through
    the ~90 layers) and batch-norm is the identity. The 2048 -> 1008 logit layer is normal with
    standard deviation 8, made orthogonal to the mean feature of four calibration images: the
    features (averages of ReLU outputs) share a large positive part that would otherwise give
    every image the same prediction, an IS of 1.
    """
    with pytest.MonkeyPatch.context() as patch:
        # The constructor always loads weights: hand it none, and skip loading them.
        patch.setattr(inceptionv3, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(
            inceptionv3.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None
        )
        network = inceptionv3.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
    with torch.no_grad():
        (features,) = network(images(4, seed=99))
    mean = features.mean(dim=0)
    weight = torch.randn(network.fc.weight.shape, generator=generator)
    weight -= torch.outer(weight @ mean, mean) / (mean @ mean)
    network.fc.weight.copy_(8.0 * weight)
    network.fc.bias.zero_()
    return network.state_dict()


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random Inception-v3 weights (built once per module)."""
    home = tmp_path_factory.mktemp("torch-home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(random_inception_state(seed=0), checkpoints / WEIGHTS_NAME)
    return home


def refuse_download(calls: list):
    def download(url, destination, *args, **kwargs):
        calls.append((url, destination))
        raise OSError("no network in this test")

    return download


@pytest.fixture
def with_weights(weights_home, monkeypatch) -> Path:
    """TORCH_HOME set to the random weights; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(weights_home))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download([]))
    return weights_home


def images(count: int, seed: int, channels: int = 3, dark: bool = False) -> torch.Tensor:
    """uint8 32x32 images with structure: a noisy background and a square of random intensity.
    ``dark`` halves every pixel: a second set that differs from the first."""
    generator = torch.Generator().manual_seed(seed)
    shape = (count, channels, 32, 32)
    result = torch.randint(0, 100, shape, generator=generator, dtype=torch.uint8)
    square = torch.randint(0, 156, (count, channels, 1, 1), generator=generator, dtype=torch.uint8)
    result[:, :, 8:24, 8:24] += square
    return result // 2 if dark else result


class ImageSet(Dataset):
    """uint8 C x H x W images, one per item, as torch-fidelity's calculate_metrics reads them."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self):
        return len(self.tensor)

    def __getitem__(self, index):
        return self.tensor[index]


def test_inception_network_reads_the_weights_from_torch_hubs_cache(with_weights):
    lines = []
    network = inception_network("cpu", log=lines.append)
    assert network is not None and lines == []
    assert inception_weights_file() == with_weights / "hub" / "checkpoints" / WEIGHTS_NAME
    assert network.kind == "inception" and "Inception-v3" in network.name
    assert network.details["weights"] == str(inception_weights_file())
    assert network.details["package"] == f"torch-fidelity {torch_fidelity.__version__}"
    assert network.cache_key.startswith("inception-v3-compat-")  # with the file's time stamp
    # 1-channel images are read as gray RGB: the same outputs as the 3-channel copies.
    gray = images(2, seed=3, channels=1)
    logits, features = network.logits_and_features(
        torch.cat([images(2, seed=4), gray.expand(-1, 3, -1, -1)])
    )
    assert logits.shape == (4, 1008) and features.shape == (4, 2048)  # 1008: TF's class count
    assert torch.isfinite(logits).all() and features.std(dim=0).mean() > 0
    gray_logits, gray_features = network.logits_and_features(gray)
    torch.testing.assert_close(gray_features, features[2:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gray_logits, logits[2:], rtol=1e-4, atol=1e-4)


def test_without_weights_auto_falls_back_with_one_line_and_inception_is_an_error(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download(calls))
    expected = tmp_path / "empty" / "hub" / "checkpoints" / WEIGHTS_NAME
    lines = []
    assert inception_network("cpu", log=lines.append) is None
    # torch-fidelity tried to download to the very file inception_weights_file() names.
    [(url, destination)] = calls
    assert url == inceptionv3.URL_INCEPTION_V3 and Path(destination) == expected
    [line] = lines
    assert str(expected) in line and "no network in this test" in line and "\n" not in line
    assert line.endswith("scoring with the classifier")
    config = ImageDataConfig(cache_dir=str(tmp_path / "cache"))
    lines = []
    scorer = build_scorer(score_config("auto", config), tiny_data(), run_stub(lines.append))
    assert scorer.keys == ("eval/is_classifier", "eval/fid_classifier")
    assert [line for line in lines if "Inception" in line] == [lines[0]]
    with pytest.raises(RuntimeError) as error:
        build_scorer(score_config("inception", config), tiny_data(), run_stub(print))
    message = str(error.value)
    assert message.startswith("scores: inception: Inception-v3 unavailable")
    assert "torch-fidelity" in message and str(expected) in message and "\n" not in message


def test_is_and_fid_agree_with_torch_fidelitys_calculate_metrics(with_weights, tmp_path):
    count, splits = 8, 2
    real, fake = images(count, seed=1), images(count, seed=2, dark=True)
    network = inception_network("cpu", log=print)
    scorer = Scorer(network, real, "train", "toy", cache_dir=tmp_path, splits=splits)
    ours = scorer.score(fake)
    theirs = torch_fidelity.calculate_metrics(
        input1=ImageSet(fake),
        input2=ImageSet(real),
        isc=True,
        fid=True,
        isc_splits=splits,
        samples_shuffle=False,  # our splits are in order, as in Salimans et al.'s code
        feature_extractor="inception-v3-compat",  # its weights: the same hub cache
        cuda=False,
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes
        verbose=False,
    )
    # Measured on a 2-core CPU: IS identical to the last bit (1.8124862326310978); FID
    # 4.110932141551063 against 4.110931655851655 (relative 1.2e-7): torch-fidelity's means are
    # float32 and it takes eigenvalues of the non-symmetric S1 S2, ours of a symmetric matrix.
    assert ours["eval/is_inception"] > 1.5  # the predictions do differ between images
    assert ours["eval/is_inception"] == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert ours["eval/fid_inception"] > 1.0
    assert ours["eval/fid_inception"] == pytest.approx(
        theirs["frechet_inception_distance"], rel=1e-5
    )
    # The reference statistics went to the cache, under the weights' key, and are read back.
    [cached] = (tmp_path / "stats").iterdir()
    assert cached.name.startswith(network.cache_key)
    again = Scorer(network, real, "train", "toy", cache_dir=tmp_path, splits=splits)
    assert again.real_is == scorer.real_is


def test_frechet_distance_agrees_with_torch_fidelitys_on_full_rank_statistics():
    """The 8-image sets above give rank-7 covariances; here full-rank ones (64-d, 500 samples),
    through torch-fidelity's own statistics and FID functions."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    generator = torch.Generator().manual_seed(0)
    first = torch.randn(500, 64, generator=generator, dtype=torch.float64)
    second = 0.5 + torch.randn(500, 64, generator=generator, dtype=torch.float64) @ torch.rand(
        64, 64, generator=generator, dtype=torch.float64
    )
    statistics = [fid_features_to_statistics(features) for features in (first, second)]
    theirs = fid_statistics_to_metric(*statistics, verbose=False)["frechet_inception_distance"]
    ours = frechet_distance(*feature_statistics(first), *feature_statistics(second))
    assert ours == pytest.approx(theirs, rel=1e-9) and ours > 10


def test_dcgan_run_with_scores_inception_records_inception_keys(
    with_weights, tmp_path, monkeypatch
):
    """The trainer's own path, in this process (tests/test_dcgan.py's toy data and networks)."""
    monkeypatch.setattr(dcgan, "load_image_data", lambda config, log: toy_data())
    data = ImageDataConfig(source="folder", path="unused", cache_dir=str(tmp_path / "cache"))
    # No calibration ladder: it would run Inception-v3 over every rung of the held-out images
    # (most of this test's time); the ladder is network-agnostic and tests/test_scores.py has it.
    config = toy_config(
        data=data, scores="inception", generator_steps=2, eval_every=2, eval_samples=8,
        reference_samples=8, calibration=False,
    )  # fmt: skip
    run = RunSpec("toy", "arm", 0, "smoke", "dcgan", asdict(config), SPECS)
    specs = {role: from_dict(OptimizerSpec, spec) for role, spec in SPECS.items()}
    (tmp_path / "run").mkdir()
    ctx = RunContext(run, tmp_path / "run", "cpu")
    try:
        result = dcgan.train(config, specs, ctx)
    finally:
        ctx.close()
    assert set(result.metrics) == {
        "eval/is_inception",
        "eval/fid_inception",
        "eval/classes_inception",
        "eval/collapsed",
    }
    assert [step for step, _ in result.curves["eval/fid_inception"]] == [2]
    assert result.metrics["eval/is_inception"] >= 1.0 and result.metrics["eval/fid_inception"] > 0
    scores = result.details["scores"]
    assert scores["feature_network_kind"] == "inception"
    assert (
        scores["is_name"].startswith("IS (Inception-v3")
        and "not Inception" not in scores["is_name"]
    )
    assert scores["feature_network_weights"] == str(inception_weights_file())
    assert scores["samples"] == 8 and scores["reference_images"] == 8


def suite_run(arguments: list[str], **environment: str) -> subprocess.CompletedProcess:
    """``python -m suite run ...`` in a fresh process: runs fork from a forkserver that keeps the
    environment of its first start, so TORCH_HOME must be set before the suite process starts."""
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    return subprocess.run(
        [sys.executable, "-m", "suite", "run", *arguments],
        cwd=REPOSITORY, env={**env, **environment}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
@needs_shared
def test_smoke_run_through_the_cli_with_scores_inception(weights_home, tmp_path):
    """A DCGAN smoke run with ``scores: inception`` records Inception keys and names the network;
    without weights (downloads refused by an HTTPS proxy on a closed local port) it fails with the
    one-line error."""
    arguments = [
        "dcgan-cifar10-adam0-rmsprop-vs-sgd",
        "--budget", "smoke",
        "--workers", "1",
        "--arms", "adam0_rmsprop",
        "--no-report",
        "--set", "task.scores=inception",
        "--set", "task.eval_samples=8",
        "--set", "task.reference_samples=8",
        "--set", f"task.data.cache_dir={tmp_path / 'suite-cache'}",
    ]  # fmt: skip
    done = suite_run(
        [*arguments, "--results", str(tmp_path / "with")], TORCH_HOME=str(weights_home)
    )
    assert done.returncode == 0, done.stderr
    [path] = (tmp_path / "with").rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "done", result["error"]
    assert [s for s, _ in result["curves"]["eval/is_inception"]] == [3, 6]
    assert set(result["metrics"]) >= {"eval/is_inception", "eval/fid_inception"}
    scores = result["details"]["scores"]
    assert scores["feature_network_kind"] == "inception" and "Inception-v3" in scores["fid_name"]
    assert scores["feature_network_weights"] == str(
        weights_home / "hub" / "checkpoints" / WEIGHTS_NAME
    )

    refused = "http://127.0.0.1:9"
    suite_run(
        [*arguments, "--results", str(tmp_path / "without")],
        TORCH_HOME=str(tmp_path / "empty"), HTTPS_PROXY=refused, https_proxy=refused,
    )  # fmt: skip
    [path] = (tmp_path / "without").rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "failed"
    assert result["error"].startswith("RuntimeError: scores: inception: Inception-v3 unavailable")
    assert WEIGHTS_NAME in result["error"] and "\n" not in result["error"]
