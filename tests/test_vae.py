"""VAE through the CLI at smoke budget with split roles and non-default specs, the ELBO terms by
hand, same seed same losses, and resume equal to an uninterrupted run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import pytest
import torch
import yaml

from gans.data import ImageData, ImageDataConfig
from suite.cli import main
from suite.config import CONFIG_DIR
from suite.optimizers import OptimizerSpec
from suite.result import RunSpec
from suite.run.context import RunContext
from suite.schema import from_dict, read_yaml
from tests.helpers import needs_shared
from vae import vae

pytestmark = pytest.mark.usefixtures("one_thread")

ENCODER = {
    "optimizer": "adabelief",
    "lr": 2.0e-3,
    "kwargs": {"eps": 1.0e-16},
    "schedule": {"name": "cosine", "kwargs": {"T_max": 16, "eta_min": 1.0e-4}},
}
DECODER = {
    "optimizer": "sgd",
    "lr": 1.0e-2,
    "kwargs": {"momentum": 0.9, "nesterov": True},
    "schedule": {"name": "linear", "kwargs": {"start_factor": 1.0, "end_factor": 0.5,
                                               "total_iters": 8}},
    "clip_grad_norm": 5.0,
}  # fmt: skip


@needs_shared
def test_smoke_run_through_the_cli_with_split_roles(tmp_path):
    # The experiment file with split roles (every arm must then name encoder and decoder).
    raw = read_yaml(CONFIG_DIR / "vae-adabelief-vs-adam.yaml")
    raw["arms"] = {"split": {"encoder": ENCODER, "decoder": DECODER}}
    raw["task"].update(split_roles=True, likelihood="gaussian")
    raw["claims"] = []
    experiment = tmp_path / "vae-split.yaml"
    experiment.write_text(yaml.safe_dump(raw))
    code = main(
        [
            "run", str(experiment),
            "--budget", "smoke",
            "--workers", "1",
            "--results", str(tmp_path / "results"),
            "--no-report",
            "--set", f"task.data.cache_dir={tmp_path / 'cache'}",
        ]
    )  # fmt: skip
    assert code == 0
    [path] = tmp_path.rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "done", result["error"]
    details = result["details"]
    steps = 2 * (512 // 64)  # smoke: 2 epochs of 512 images in batches of 64
    assert details["encoder_optimizer"] == "AdaBelief"
    assert details["decoder_optimizer"] == "SGD"
    assert details["encoder_optimizer_steps"] == details["decoder_optimizer_steps"] == steps
    cosine = 1e-4 + (2e-3 - 1e-4) * (1 + math.cos(math.pi * steps / 16)) / 2
    assert details["encoder_lr_final"] == pytest.approx(cosine)
    assert details["decoder_lr_final"] == pytest.approx(1e-2 * 0.5)
    metrics = result["metrics"]
    assert metrics["test/neg_elbo_nats"] == pytest.approx(
        metrics["test/recon_nats"] + metrics["test/kl_nats"]
    )
    assert "test/bpd" in metrics and 0 < metrics["test/mse_per_pixel"] < 1
    assert [s for s, _ in result["curves"]["test/recon_nats"]] == [8, 16]  # every epoch
    for name in ("samples", "reconstructions"):
        assert (path.parent / result["artifacts"][name]).stat().st_size > 0


def test_kl_and_likelihoods_by_hand():
    mu, log_var = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # per dimension: 0; and -1/2 (1 + log 4 - 1 - 4) = 2 - log 2
    assert vae.kl_to_standard_normal(mu, log_var).item() == pytest.approx(2 - math.log(2))
    x = torch.tensor([[1.0, 0.0]])
    # Bernoulli at logit 0: log 2 per pixel.
    bce = vae.reconstruction_nats(torch.zeros(1, 2), x, "bernoulli", torch.tensor(0.0))
    assert bce.item() == pytest.approx(2 * math.log(2))
    # Gaussian, sigma 1, errors 1 and 0: 1/2 + 2 * 1/2 log(2 pi).
    gauss = vae.reconstruction_nats(torch.zeros(1, 2), x, "gaussian", torch.tensor(0.0))
    assert gauss.item() == pytest.approx(0.5 + math.log(2 * math.pi))


def test_bits_per_dim_and_kl_warmup():
    config = vae.Config(likelihood="bernoulli", binarize=True)
    assert vae.bits_per_dim(784 * math.log(2), 784, config) == pytest.approx(1.0)
    assert vae.bits_per_dim(1.0, 784, vae.Config()) is None  # BCE on grey levels
    gaussian = vae.Config(likelihood="gaussian")
    assert vae.bits_per_dim(0.0, 10, gaussian) == pytest.approx(8.0)  # log 256 / log 2
    warm = vae.Config(kl_weight=0.5, kl_warmup_fraction=0.25)
    assert [vae.kl_weight_at(s, 100, warm) for s in (0, 10, 25, 80)] == [0.0, 0.2, 0.5, 0.5]


def toy_data() -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.zeros(96, dtype=torch.long)
    return ImageData(images[:64], labels[:64], images[64:], labels[64:], ["x"], "toy", "toy")


def direct_run(tmp_path, config: vae.Config, specs: dict, name: str, monkeypatch):
    monkeypatch.setattr(vae, "load_image_data", lambda config, log: toy_data())
    run = RunSpec("toy", "arm", 0, "smoke", "vae", asdict(config), specs)
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    built = {role: from_dict(OptimizerSpec, spec) for role, spec in specs.items()}
    ctx = RunContext(run, run_dir, "cpu")
    try:
        return vae.train(config, built, ctx)
    finally:
        ctx.close()


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_same_seed_identical_and_resume_equals_an_uninterrupted_run(
    tmp_path, monkeypatch, architecture
):
    config = vae.Config(
        data=ImageDataConfig(source="folder", path="unused", image_size=28, channels=1),
        architecture=architecture,
        width=4,
        hidden=16,
        latent_dim=4,
        batch_size=16,
        epochs=4,
        eval_every_epochs=2,
        log_every=2,
        kl_warmup_fraction=0.0,  # a warm-up depends on the total, which the resume changes
    )
    specs = {"model": {"optimizer": "adam", "lr": 1e-3}}
    first = direct_run(tmp_path, config, specs, "a", monkeypatch)
    second = direct_run(tmp_path, config, specs, "b", monkeypatch)
    assert first.curves["train/loss"] == second.curves["train/loss"]
    assert first.metrics == second.metrics
    direct_run(tmp_path, replace(config, epochs=2), specs, "c", monkeypatch)
    resumed = direct_run(tmp_path, config, specs, "c", monkeypatch)
    assert resumed.curves["train/loss"] == first.curves["train/loss"]
    assert resumed.metrics == first.metrics
    assert resumed.details["model_optimizer_steps"] == 16
