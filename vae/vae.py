"""Variational autoencoder (Kingma & Welling 2014) with its optimizer as one role, ``model``, or
two, ``encoder`` and ``decoder`` (``split_roles: true``).

A convolutional VAE (28/32/64 px) or the MLP VAE of pytorch/examples (28x28, 784-400-z); a
Bernoulli likelihood (BCE on grey levels, or on binarized pixels) or a Gaussian one (learned
global scale, uniformly dequantized pixels); a KL weight with a linear warm-up over a fraction of
training (NVAE anneals KL over 30% of training, Vahdat & Kautz 2020 §4 / NVlabs/NVAE train.py).

Metrics on the test split, per image in nats: ``test/recon_nats`` (-log p(x|z), one seeded z
sample), ``test/kl_nats``, ``test/neg_elbo_nats`` (their sum, an upper bound on -log p(x)), plus
``test/mse_per_pixel`` (decoder mean vs pixels in [0, 1]) and ``test/bpd`` where the likelihood
is a likelihood of the data (binarized Bernoulli; dequantized Gaussian). Scores are recorded every
``eval_every_epochs``, with sample and reconstruction grids at the end. On CUDA: optional bf16
autocast, channels_last, optional torch.compile (gans/dcgan.py's ``speed_settings``;
``cpu_speed_settings`` applies them on the CPU too).

Run: ``python -m suite run vae-adabelief-vs-adam`` (configs/).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import save_image

from gans.data import DataOrder, ImageDataConfig, load_image_data, to_unit_range
from gans.train_state import LoneSeed, resume_point
from gans.train_state import TrainState as _TrainState
from suite.optimizers import (
    OptimizerSpec,
    RoleOptimizer,
    build_role_optimizer,
    check_roles,
    role_details,
)
from suite.result import Result
from suite.run.context import RunContext
from suite.run.device import SpeedSettings, speed_settings
from suite.run.stacking import SeedRuns


def _mnist_t10k() -> ImageDataConfig:
    return ImageDataConfig(
        source="mnist_idx", path="../shared/data/mnist-t10k", image_size=28, channels=1
    )


@dataclass
class Config:
    """VAE task settings (the ``task`` and ``budgets`` keys of an experiment file)."""

    data: ImageDataConfig = field(default_factory=_mnist_t10k)
    """the images (gans/data.py); default the offline MNIST test set, 8k train / 2k test."""
    architecture: Literal["conv", "mlp"] = "conv"
    """conv: two (three at 64 px) stride-2 convolutions each way; mlp: 28x28 only."""
    latent_dim: int = 32
    """size of z (CLAIMS.md Part 2 row 2: latent 32)."""
    width: int = 32
    """conv: channels of the first encoder layer, doubled in the next."""
    hidden: int = 400
    """hidden units of the conv bottleneck and the MLP (pytorch/examples vae: 400)."""
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    """p(x|z): Bernoulli (BCE, as pytorch/examples) or Gaussian with a learned global scale."""
    binarize: bool = False
    """Bernoulli only: threshold pixels at 1/2, so that BCE is a likelihood (and bpd is reported)."""
    kl_weight: float = 1.0
    """final weight of the KL term (1: the ELBO; other values: a beta-VAE objective)."""
    kl_warmup_fraction: float = 0.0
    """KL weight rises linearly from 0 over this fraction of training (NVAE: 0.3)."""
    split_roles: bool = False
    """False: one role ``model``; True: roles ``encoder`` and ``decoder``."""
    batch_size: int = 128
    epochs: int = 30
    """passes over the training split (incomplete last batches dropped)."""
    eval_every_epochs: int = 5
    """epochs between test evaluations (and checkpoints)."""
    log_every: int = 50
    """optimizer steps between training-loss records (and NaN checks)."""
    amp: bool = False
    """bf16 autocast for the networks (losses stay float32). CUDA only, unless
    ``cpu_speed_settings``."""
    channels_last: bool = True
    """conv only: channels_last memory format. CUDA only, unless ``cpu_speed_settings``."""
    compile: bool = False
    """torch.compile the encoder and decoder. CUDA only, unless ``cpu_speed_settings``."""
    cpu_speed_settings: bool = False
    """apply ``amp`` (CPU bf16 autocast), ``channels_last`` and ``compile`` on the CPU as well:
    for CPUs with bf16 units, and for checking the CUDA code path without a GPU. Off: CPU runs are
    plain fp32 eager in the default memory format."""

    def validate(self) -> None:
        for name in ("latent_dim", "width", "hidden", "batch_size", "epochs", "eval_every_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.log_every < 1:
            raise ValueError("log_every must be >= 1")
        if self.architecture == "mlp" and self.data.image_size != 28:
            raise ValueError("the MLP VAE is for 28x28 images (data.image_size: 28)")
        if self.binarize and self.likelihood != "bernoulli":
            raise ValueError("binarize applies to the bernoulli likelihood only")
        if not 0 <= self.kl_warmup_fraction <= 1 or self.kl_weight < 0:
            raise ValueError("need kl_weight >= 0 and 0 <= kl_warmup_fraction <= 1")


def roles(config: Config) -> tuple[str, ...]:
    return ("encoder", "decoder") if config.split_roles else ("model",)


class TrainState(_TrainState):
    """A VAE run's checkpoint (gans/train_state.py): encoder and decoder weights, the role
    optimizers, the data order and the training-loss sum of the log window."""

    NETWORKS = ("encoder", "decoder")
    LOSS_KEY = "loss_sum"


# --- networks ------------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    """x -> stride-2 convolutions -> a hidden layer -> (mu, log variance) of q(z|x)."""

    def __init__(self, channels: int, image_size: int, width: int, hidden: int, latent: int):
        super().__init__()
        layers, previous = [], channels
        for index in range(_down_count(image_size)):
            current = width * 2**index
            layers += [nn.Conv2d(previous, current, 4, 2, 1), nn.ReLU(True)]
            previous = current
        end = image_size // 2 ** _down_count(image_size)
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(previous * end * end, hidden))
        self.head = nn.Linear(hidden, 2 * latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.head(F.relu(self.body(x))).chunk(2, dim=1)
        return mu, log_var


class ConvDecoder(nn.Module):
    """z -> a hidden layer -> fractionally-strided convolutions -> per-pixel logits (Bernoulli)
    or means (Gaussian, with one learned log-scale for all pixels)."""

    def __init__(self, channels: int, image_size: int, width: int, hidden: int, latent: int):
        super().__init__()
        count = _down_count(image_size)
        self.start, self.top = image_size // 2**count, width * 2 ** (count - 1)
        self.project = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, self.top * self.start * self.start),
            nn.ReLU(True),
        )
        layers = []
        for index in reversed(range(count)):
            current = channels if index == 0 else width * 2 ** (index - 1)
            layers.append(nn.ConvTranspose2d(width * 2**index, current, 4, 2, 1))
            if index > 0:
                layers.append(nn.ReLU(True))
        self.body = nn.Sequential(*layers)
        self.log_scale = nn.Parameter(torch.tensor(-1.0))  # Gaussian only (unused otherwise)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, self.top, self.start, self.start))


class MLPEncoder(nn.Module):
    """pytorch/examples' VAE encoder: 784 -> 400 -> (mu, log variance)."""

    def __init__(self, channels: int, image_size: int, width: int, hidden: int, latent: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * 28 * 28, hidden), nn.ReLU(True)
        )
        self.head = nn.Linear(hidden, 2 * latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.head(self.body(x)).chunk(2, dim=1)
        return mu, log_var


class MLPDecoder(nn.Module):
    """pytorch/examples' VAE decoder: z -> 400 -> 784 logits or means."""

    def __init__(self, channels: int, image_size: int, width: int, hidden: int, latent: int):
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(True), nn.Linear(hidden, channels * 28 * 28)
        )
        self.log_scale = nn.Parameter(torch.tensor(-1.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(-1, self.channels, 28, 28)


NETWORKS = {"conv": (ConvEncoder, ConvDecoder), "mlp": (MLPEncoder, MLPDecoder)}


def _down_count(image_size: int) -> int:
    return 3 if image_size == 64 else 2


@dataclass
class VAE:
    encoder: nn.Module
    decoder: nn.Module
    encode: nn.Module  # the same modules, or their torch.compile wrappers (speed.compile)
    decode: nn.Module
    device: str
    speed: SpeedSettings

    def autocast(self):
        return self.speed.autocast()


def build(config: Config, channels: int, device: str) -> VAE:
    """Networks initialized on the CPU, moved to the device, with the speed settings that apply
    there (gans/dcgan.py's speed_settings)."""
    encoder_class, decoder_class = NETWORKS[config.architecture]
    sizes = (channels, config.data.image_size, config.width, config.hidden, config.latent_dim)
    encoder, decoder = encoder_class(*sizes), decoder_class(*sizes)
    speed = speed_settings(config, device)
    if config.architecture != "conv":  # the MLP has no image-shaped weights or activations
        speed = replace(speed, channels_last=False)
    encode, decode = speed.place(encoder, device), speed.place(decoder, device)
    return VAE(encoder, decoder, encode, decode, device, speed)


def build_optimizers(vae: VAE, specs: dict[str, OptimizerSpec], config: Config):
    modules = {"encoder": [vae.encoder], "decoder": [vae.decoder]}
    if not config.split_roles:
        modules = {"model": [vae.encoder, vae.decoder]}
    role_params = {
        role: [p for module in group for p in module.parameters()]
        for role, group in modules.items()
    }
    check_roles(role_params, [*vae.encoder.parameters(), *vae.decoder.parameters()])
    return {
        role: build_role_optimizer(role, specs[role], role_params[role], modules[role])
        for role in role_params
    }


# --- the objective (Kingma & Welling 2014) ----------------------------------------------------


def kl_to_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(log_var)) || N(0, I)) per image, in closed form (Kingma & Welling 2014,
    Appendix B): -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)."""
    return -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).flatten(1).sum(1)


def reconstruction_nats(
    output: torch.Tensor, x: torch.Tensor, likelihood: str, log_scale: torch.Tensor
) -> torch.Tensor:
    """-log p(x|z) per image, summed over pixels. Bernoulli: BCE on logits. Gaussian: mean
    ``output``, standard deviation exp(log_scale) shared by all pixels."""
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(output, x, reduction="none")
    else:
        nll = 0.5 * ((x - output) * torch.exp(-log_scale)).pow(2) + log_scale
        nll = nll + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def decoder_mean(output: torch.Tensor, likelihood: str) -> torch.Tensor:
    return torch.sigmoid(output) if likelihood == "bernoulli" else output.clamp(0, 1)


def kl_weight_at(step: int, total_steps: int, config: Config) -> float:
    """Linear KL warm-up from 0 to ``kl_weight`` over ``kl_warmup_fraction`` of training."""
    warmup = config.kl_warmup_fraction * total_steps
    if warmup <= 0:
        return config.kl_weight
    return config.kl_weight * min(1.0, step / warmup)


def model_input(images: torch.Tensor, config: Config, noise: torch.Tensor | None = None):
    """uint8 images -> the data the likelihood models, in [0, 1].

    Bernoulli: grey levels, or pixels thresholded at 1/2 (``binarize``). Gaussian: uniformly
    dequantized, (x + u) / 256 with u ~ U(0, 1) (``noise`` fixes u for the test split), so that
    a continuous density gives bits per dimension (Theis et al. 2016, §3.1).
    """
    if config.likelihood == "gaussian":
        u = torch.rand(images.shape, device=images.device) if noise is None else noise
        return (images.float() + u) / 256.0
    x = to_unit_range(images)
    return (x > 0.5).float() if config.binarize else x


def forward_losses(vae: VAE, x: torch.Tensor, config: Config, eps: torch.Tensor | None = None):
    """Per-image reconstruction nats, KL nats, and the decoder output."""
    with vae.autocast():
        mu, log_var = vae.encode(x)
    mu, log_var = mu.float(), log_var.float()
    if eps is None:
        eps = torch.randn_like(mu)
    z = mu + eps * torch.exp(0.5 * log_var)  # the reparameterization trick (K&W 2014, §2.4)
    with vae.autocast():
        output = vae.decode(z)
    output = output.float()
    recon = reconstruction_nats(output, x, config.likelihood, vae.decoder.log_scale)
    return recon, kl_to_standard_normal(mu, log_var), output


def draw_inputs(batch: torch.Tensor, config: Config, stream: torch.Generator | None = None):
    """A batch's model input and its reparameterization noise, drawn in a lone run's order: the
    dequantization noise (Gaussian likelihood only) inside model_input, then eps for z.

    :param stream: the generator to draw from; None: the global one (a lone run). A stack draws
        each seed's from that seed's stream (vae/stacked.py).
    """
    noise = None
    if config.likelihood == "gaussian":
        noise = torch.rand(batch.shape, device=batch.device, generator=stream)
    x = model_input(batch, config, noise)
    eps = torch.randn(len(batch), config.latent_dim, device=batch.device, generator=stream)
    return x, eps


def train_step(vae, optimizers, images, config: Config, kl_weight: float) -> torch.Tensor:
    """One update of every role on the negative (KL-weighted) ELBO; returns the detached loss."""
    x, eps = draw_inputs(images, config)
    if vae.speed.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    recon, kl, _ = forward_losses(vae, x, config, eps)
    loss = (recon + kl_weight * kl).mean()
    return optimizer_step(optimizers, loss)


def optimizer_step(optimizers: dict, loss: torch.Tensor) -> torch.Tensor:
    """Every role's update on ``loss`` (a stack's: the sum of the seeds' losses, whose gradient
    for seed i's parameters is seed i's own); returns the detached loss."""
    for optimizer in optimizers.values():
        optimizer.zero_grad()
    loss.sum().backward()
    for optimizer in optimizers.values():
        optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(vae: VAE, images: torch.Tensor, config: Config, seed: int) -> dict[str, float]:
    """Test metrics per image (nats), per pixel (MSE) and per dimension (bits), with a seeded z
    sample and seeded dequantization noise, so two evaluations of one model agree exactly."""
    generator = torch.Generator(images.device).manual_seed(20_000 + seed)
    sums = {"recon": 0.0, "kl": 0.0, "squared_error": 0.0}
    for batch in images.split(500):
        noise = torch.rand(batch.shape, device=batch.device, generator=generator)
        x = model_input(batch, config, noise)
        eps = torch.randn(len(batch), config.latent_dim, device=batch.device, generator=generator)
        recon, kl, output = forward_losses(vae, x, config, eps)
        mean = decoder_mean(output, config.likelihood)
        sums["recon"] += float(recon.sum())
        sums["kl"] += float(kl.sum())
        sums["squared_error"] += float((mean - to_unit_range(batch)).pow(2).sum())
    count, dims = len(images), images[0].numel()
    metrics = {
        "test/recon_nats": sums["recon"] / count,
        "test/kl_nats": sums["kl"] / count,
        "test/neg_elbo_nats": (sums["recon"] + sums["kl"]) / count,
        "test/mse_per_pixel": sums["squared_error"] / (count * dims),
    }
    bpd = bits_per_dim(metrics["test/neg_elbo_nats"], dims, config)
    if bpd is not None:
        metrics["test/bpd"] = bpd
    return metrics


def bits_per_dim(neg_elbo_nats: float, dims: int, config: Config) -> float | None:
    """-ELBO in bits per dimension of 8-bit data, or None where BCE on grey levels is not a
    likelihood of the data. Gaussian: the density is on [0, 1], so add log 256 per dimension."""
    if config.likelihood == "gaussian":
        return (neg_elbo_nats + dims * math.log(256)) / (dims * math.log(2))
    if config.binarize:
        return neg_elbo_nats / (dims * math.log(2))
    return None


# --- the run ---------------------------------------------------------------------------------
#
# One loop trains a lone run and a stack of seeds (vae/stacked.py, ``suite run --stack-seeds``):
# ``train_seeds`` gets a ``Lone`` VAE here, a ``stacked.Stacked`` there, with the same methods;
# each seed checkpoints a TrainState in one format, so a stack resumes lone and the other way.


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    torch.manual_seed(ctx.seed)
    data = load_image_data(config.data, log=ctx.log).to(ctx.device)
    vae = build(config, data.train.shape[1], ctx.device)
    optimizers = build_optimizers(vae, specs, config)
    order = DataOrder(len(data.train), config.batch_size, ctx.seed, ctx.device)
    saved = TrainState.load(ctx)
    if saved is not None:
        saved.restore(networks(vae), optimizers, order)
    # After building (weight init draws): reparameterization and dequantization noise continue
    # from where the checkpoint left the global generators. The KL warm-up is a function of the
    # step, and evaluation draws from seeded generators of its own.
    ctx.restore_rng()
    lone = Lone(networks(vae), optimizers, order, vae, data.train, config)
    (result,) = train_seeds(lone, config, data, [ctx], [saved])
    return result


def steps_per_epoch(data, config: Config) -> int:
    steps = len(data.train) // config.batch_size
    if steps < 1:
        raise ValueError(f"{len(data.train)} training images is less than one batch")
    return steps


@dataclass
class Lone(LoneSeed):
    """A lone run as ``train_seeds`` trains it (vae/stacked.py: ``Stacked``, for S seeds)."""

    vae: VAE
    images: torch.Tensor
    config: Config

    def step(self, kl_weight: float) -> torch.Tensor:
        batch = self.images[self.order.next()]
        return train_step(self.vae, self.optimizers, batch, self.config, kl_weight)

    def seed_model(self, i: int) -> VAE:
        return self.vae


def train_seeds(seeds, config: Config, data, contexts, states) -> list[Result]:
    """The training loop of a lone run (``seeds``: a Lone) or of a stack (vae/stacked.py):
    every seed's curves, test metrics, checkpoints and result, from fresh or from checkpoints at
    one step (``states``: each seed's TrainState or None)."""
    runs = SeedRuns(contexts, stacked=seeds.stacked is not None)
    step, since_log, loss_sums, last_evals = resume_point(states, (), data.train.device)
    total_steps = steps_per_epoch(data, config) * config.epochs
    eval_steps = steps_per_epoch(data, config) * config.eval_every_epochs
    while step < total_steps and runs.live:
        kl_weight = kl_weight_at(step, total_steps, config)
        loss_sums += seeds.step(kl_weight)
        step, since_log = step + 1, since_log + 1
        runs.progress(step, total_steps)
        if step % config.log_every == 0 or step == total_steps:
            losses = [total / since_log for total in loss_sums.tolist()]
            lrs = {f"train/lr_{role}": o.lr for role, o in seeds.optimizers.items()}
            for i in list(runs.live):
                record = {"train/loss": losses[i], "train/kl_weight": kl_weight, **lrs}
                runs.check(i, step, record, loss=losses[i])
            loss_sums.zero_()
            since_log = 0
        if step % eval_steps == 0 or step == total_steps:
            for i in list(runs.live):
                ctx = contexts[i]
                last_evals[i] = evaluate(seeds.seed_model(i), data.test, config, ctx.seed)
                if runs.check(i, step, last_evals[i], **last_evals[i]):
                    state = TrainState(**seeds.seed_state(i), loss_sums=loss_sums[i], step=step,
                                       since_log=since_log, last_eval=last_evals[i])  # fmt: skip
                    ctx.save_checkpoint(state.state_dict(), rng=seeds.rng(i))
    for i in runs.live:
        runs.outcomes[i] = seed_result(seeds, i, config, data, contexts[i], last_evals[i])
    return runs.results()


def seed_result(seeds, i: int, config: Config, data, ctx, last_eval) -> Result:
    """Seed i's sample and reconstruction grids and result, at the end of training."""
    model = seeds.seed_model(i)
    artifacts = save_grids(model, data.test, config, ctx)
    optimizers = seeds.role_optimizers()
    details = run_details(config, data, optimizers, steps_per_epoch(data, config), model.speed)
    if seeds.stacked is not None:
        details["stacked"] = seeds.stacked
    return ctx.result(last_eval, details=details, artifacts=artifacts)


def networks(vae: VAE) -> dict[str, nn.Module]:
    """The modules a checkpoint holds, by their TrainState names."""
    return {"encoder": vae.encoder, "decoder": vae.decoder}


@torch.no_grad()
def save_grids(vae: VAE, test: torch.Tensor, config: Config, ctx) -> dict[str, str]:
    """Samples from fixed z, and the first 32 test images above their reconstructions."""
    z = torch.randn(
        64,
        config.latent_dim,
        device=ctx.device,
        generator=torch.Generator(ctx.device).manual_seed(ctx.seed),
    )
    with vae.autocast():
        samples = decoder_mean(vae.decode(z).float(), config.likelihood)
    save_image(samples, ctx.run_dir / "samples.png", nrow=8)
    originals = test[:32]
    x = model_input(originals, config, torch.full(originals.shape, 0.5, device=ctx.device))
    with vae.autocast():
        mu, _ = vae.encode(x)
        reconstructions = decoder_mean(vae.decode(mu).float(), config.likelihood)
    pairs = torch.cat([to_unit_range(originals), reconstructions.float()])
    save_image(pairs, ctx.run_dir / "reconstructions.png", nrow=8)
    return {"samples": "samples.png", "reconstructions": "reconstructions.png"}


def run_details(
    config: Config,
    data,
    optimizers: dict[str, RoleOptimizer],
    steps_per_epoch: int,
    speed: SpeedSettings,
):
    details = {
        "data": {
            "name": data.name,
            "source": data.description,
            "train_images": len(data.train),
            "test_images": len(data.test),
            "image_size": config.data.image_size,
        },
        "likelihood": config.likelihood,
        "binarize": config.binarize,
        "units": "per test image: nats; mse: per pixel in [0, 1]; bpd: bits per dimension",
        "z_samples_per_image": 1,
        "steps_per_epoch": steps_per_epoch,
        "speed_settings": asdict(speed),  # what ran: bf16 and fp32 differ in numbers
    }
    if bits_per_dim(0.0, 1, config) is None:
        details["bpd_note"] = (
            "no test/bpd: BCE on grey-level pixels is not a likelihood of the data "
            "(set binarize: true, or likelihood: gaussian)"
        )
    details.update(role_details(optimizers))
    return details
