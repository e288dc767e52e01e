"""DCGAN (Radford, Metz & Chintala 2016) with one optimizer role per network: ``generator`` and
``discriminator``.

Each role has its own spec (optimizer, lr, kwargs, schedule, clipping), so pairings such as a
generator Adam(beta1=0) against a discriminator RMSprop can be compared with the paper's
Adam(2e-4, beta1=0.5) for both. The step reads like pytorch/examples' ``dcgan/main.py``, in
functions: update D on real and detached fake images, then update G with the labels flipped.

Images are 28x28 or 32x32 (MNIST, Fashion-MNIST, CIFAR-10) or 64x64 (CelebA); the dataset sits
on the device as uint8 and is normalized and flipped there. Scores (IS and FID, see
gans/scores.py) are computed every ``eval_every`` generator steps, with a sample grid at fixed
noise; a generator producing (near-)constant images is recorded as collapsed, NaN losses or
parameters as diverged. The first 20% of training is summarized for CLAIMS.md's GAN rules (early
loss oscillation, the discriminator's early accuracy: ``early_metrics``). On CUDA: bf16
autocast, channels_last, optional torch.compile (see ``speed_settings``;
``cpu_speed_settings`` applies them on the CPU too).

Run: ``python -m suite run dcgan-cifar10-adam0-rmsprop-vs-sgd`` (configs/).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import save_image

from gans.data import (
    DataOrder,
    ImageData,
    ImageDataConfig,
    load_image_data,
    to_signed_range,
    to_uint8,
)
from gans.scores import Scorer, build_scorer, collapse_statistics
from gans.train_state import LoneSeed, resume_point
from gans.train_state import TrainState as _TrainState
from suite.optimizers import (
    OptimizerSpec,
    RoleOptimizer,
    build_role_optimizer,
    capture_blockers,
    check_roles,
    role_details,
)
from suite.result import Result
from suite.run.context import RunContext
from suite.run.device import SpeedSettings, speed_settings
from suite.run.graphs import CapturedStep
from suite.run.stacking import SeedRuns

ROLES = ("generator", "discriminator")


class TrainState(_TrainState):
    """A DCGAN run's checkpoint (gans/train_state.py): both networks' weights with batch-norm
    statistics, the role optimizers, the data order, the D and G loss sums of the log window and
    the early-window sums (``early_update``)."""

    NETWORKS = ROLES
    LOSS_KEY = "loss_sums"


@dataclass
class Config:
    """DCGAN task settings (the ``task`` and ``budgets`` keys of an experiment file)."""

    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    """the images (gans/data.py): source, path, image_size 28/32/64, channels, limits, cache."""
    latent_dim: int = 100
    """size of z (Radford et al. 2016, §4 and Fig. 1: a 100-d noise vector)."""
    generator_width: int = 64
    """channels of the generator's last hidden layer, doubled per layer towards z (ngf)."""
    discriminator_width: int = 64
    """channels of the discriminator's first layer, doubled per layer (ndf)."""
    batch_size: int = 128
    """mini-batch size (Radford et al. 2016, §4: 128)."""
    generator_steps: int = 30_000
    """generator updates of training."""
    discriminator_steps: int = 1
    """discriminator updates per generator update (1 in DCGAN; WGAN uses 5)."""
    reuse_fake: bool = True
    """the G update scores the fake batch of the last D update, as pytorch/examples' dcgan does
    (one generator forward per step instead of two). False: a fresh fake batch for the G update
    (the suite before issue 13; results differ, the expected training is the same)."""
    loss: Literal["bce", "hinge"] = "bce"
    """non-saturating BCE (Goodfellow et al. 2014, §3) or hinge (Miyato et al. 2018)."""
    hflip: bool = True
    """random left-right flips of real images (on the device)."""
    eval_every: int = 5_000
    """generator steps between scores, sample grids and checkpoints."""
    log_every: int = 500
    """generator steps between training-loss records (and NaN checks)."""
    eval_samples: int = 10_000
    """generated images per score."""
    reference_samples: int = 50_000
    """real images (at most) for the reference statistics."""
    reference_split: Literal["train", "test"] = "train"
    """real split the FID compares with (CIFAR-10 FIDs usually use the 50k training images)."""
    scores: Literal["auto", "inception", "classifier"] = "auto"
    """feature network: Inception-v3 if available (auto), required (inception), or the suite's
    classifier (gans/classifier.py; never reported as an Inception score)."""
    calibration: bool = True
    """score the calibration ladder once per reference set (gans/scores.py: real held-out images
    with noise, blur and dropped classes; cached with the reference statistics): 10 scorings of
    ``eval_samples`` images when the statistics are not cached yet."""
    classifier: Literal["cached", "tiny"] = "cached"
    """cached: the dataset's classifier (trained and cached now if missing); tiny: a tiny CNN
    trained in seconds on this run's data (smoke runs only)."""
    amp: bool = True
    """bf16 autocast for the forward passes (losses in float32). CUDA only, unless
    ``cpu_speed_settings``."""
    channels_last: bool = True
    """channels_last memory format for models and batches. CUDA only, unless
    ``cpu_speed_settings``."""
    compile: bool = False
    """torch.compile both networks (first steps are slow while it compiles). CUDA only, unless
    ``cpu_speed_settings``."""
    cpu_speed_settings: bool = False
    """apply ``amp`` (CPU bf16 autocast), ``channels_last`` and ``compile`` on the CPU as well:
    for CPUs with bf16 units, and for checking the CUDA code path without a GPU. Off: CPU runs are
    plain fp32 eager in the default memory format."""
    cuda_graphs: bool = True
    """capture the whole train step (D and G updates with their optimizer steps) as one CUDA
    graph on CUDA, after a few eager warm-up steps, and replay it (suite/run/graphs.py): one
    launch instead of hundreds of kernel launches per step. The same step, except that bf16
    autocast runs uncached inside the graph (SpeedSettings.autocast: weight gradients differ in
    rounding); with ``compile``, the compiled networks run inside the graph. Off by itself,
    with the reason in the result's details (``cuda_graphs``), on the CPU and when a role's
    spec cannot be captured (a schedule, Lookahead, an optimizer with host-side step state:
    suite.optimizers.capture_blockers)."""

    def validate(self) -> None:
        for name in (
            "latent_dim",
            "generator_width",
            "discriminator_width",
            "batch_size",
            "generator_steps",
            "discriminator_steps",
            "eval_every",
            "log_every",
            "eval_samples",
            "reference_samples",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.eval_samples < 2 or self.reference_samples < 2:
            raise ValueError("eval_samples and reference_samples must be >= 2 (covariances)")


def roles(config: Config) -> tuple[str, ...]:
    return ROLES


# --- networks (Radford et al. 2016, §3-4 and Fig. 1) ------------------------------------------


def _start_size(image_size: int) -> int:
    """Spatial size of the first feature map: 7 for 28 px (7-14-28), else 4 (4-8-16-32(-64))."""
    return 7 if image_size == 28 else 4


def _layer_count(image_size: int) -> int:
    """Stride-2 layers between the first feature map and the image."""
    return {28: 2, 32: 3, 64: 4}[image_size]


class Generator(nn.Module):
    """z -> project to a start x start map -> fractionally-strided convolutions, BN and ReLU ->
    tanh image (Radford et al. 2016, §3: no pooling, no fully connected hidden layers)."""

    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int):
        super().__init__()
        layers_count = _layer_count(image_size)
        widths = [width * 2 ** (layers_count - 1 - i) for i in range(layers_count)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], _start_size(image_size), 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for previous, current in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(previous, current, 4, 2, 1, bias=False),
                nn.BatchNorm2d(current),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Image -> strided convolutions with LeakyReLU(0.2), BN except on the input layer -> one
    logit (Radford et al. 2016, §3)."""

    def __init__(self, width: int, channels: int, image_size: int):
        super().__init__()
        layers_count = _layer_count(image_size)
        widths = [width * 2**i for i in range(layers_count)]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for previous, current in pairwise(widths):
            layers += [
                nn.Conv2d(previous, current, 4, 2, 1, bias=False),
                nn.BatchNorm2d(current),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(widths[-1], 1, _start_size(image_size), 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()


def init_weights(module: nn.Module) -> None:
    """Radford et al. 2016, §4: weights from N(0, 0.02); BN scale from N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class GAN:
    """The two networks, what runs them (compiled or not) and the device settings."""

    generator: Generator
    discriminator: Discriminator
    generate: nn.Module
    discriminate: nn.Module
    latent_dim: int
    device: str
    speed: SpeedSettings
    seed_shape: ClassVar[tuple[int, ...]] = ()
    """no seed dimension (a stack's is (S,): gans/stacked.py)."""

    def autocast(self):
        return self.speed.autocast()

    def noise(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.latent_dim, 1, 1, device=self.device, generator=generator)


def build(config: Config, channels: int, device: str) -> GAN:
    """Networks initialized as in DCGAN (on the CPU), moved to the device, with the speed
    settings that apply there (speed_settings)."""
    generator = Generator(
        config.latent_dim, config.generator_width, channels, config.data.image_size
    )
    discriminator = Discriminator(config.discriminator_width, channels, config.data.image_size)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    speed = speed_settings(config, device)
    generate, discriminate = speed.place(generator, device), speed.place(discriminator, device)
    return GAN(generator, discriminator, generate, discriminate, config.latent_dim, device, speed)


def build_optimizers(
    gan: GAN, specs: dict[str, OptimizerSpec], capturable: bool = False
) -> dict[str, RoleOptimizer]:
    """Each role's RoleOptimizer; ``capturable`` (CUDA graphs on: ``graphs_status``) keeps torch
    optimizers' step counts on the device."""
    role_modules = {"generator": gan.generator, "discriminator": gan.discriminator}
    role_params = {role: list(module.parameters()) for role, module in role_modules.items()}
    check_roles(role_params, [*gan.generator.parameters(), *gan.discriminator.parameters()])
    return {
        role: build_role_optimizer(
            role, specs[role], role_params[role], [role_modules[role]], capturable=capturable
        )
        for role in ROLES
    }


# --- losses (pure functions of the discriminator's logits) -----------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str):
    """D's loss on a real and a fake batch: BCE with targets 1/0, or the hinge loss."""
    if loss == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """G's loss. BCE: the non-saturating form, maximizing log D(G(z)) by labeling fakes as real
    (Goodfellow et al. 2014, §3: strong gradients early, when D rejects fakes confidently)."""
    if loss == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The fraction of D's batch it classifies right, in [0, 1]: real images with D(x) > 0.5
    (logit > 0), generated ones with D(G(z)) < 0.5 (logit < 0), both halves counted alike (they
    have the same size). A logit of exactly 0 counts as wrong on both sides. Over the last
    dimension: (B,) -> (), a stack's (S, B) -> (S,)."""
    right = torch.cat([real_logits > 0, fake_logits < 0], dim=-1)
    return right.float().mean(-1)


# --- one training step -----------------------------------------------------------------------
#
# A step is split in two (suite/run/graphs.py): the host part draws the step's randomness (the
# real batch's indices, the flips' uniforms, the noise) from the same generators in the same
# order as ever, into input buffers; the compute part (D and G updates) reads only those buffers,
# the on-device images and the parameters, so a CUDA graph of it replays the whole step. The
# same compute part runs eagerly on the CPU and before capture: a CPU test of it is a test of
# what the graph replays.


@dataclass
class StepInputs:
    """One train step's random draws, in buffers the compute part reads (static ones when the
    step is captured: refilled in place before each call, never reallocated)."""

    indices: torch.Tensor
    """(discriminator_steps, batch) int64: each D update's real-image indices (DataOrder)."""
    flips: torch.Tensor | None
    """(discriminator_steps, batch) uniforms in [0, 1): a real image is flipped where < 0.5
    (gans/data.py random_hflip's draw); None without ``hflip``."""
    noise: torch.Tensor
    """(noise_batches, batch, latent, 1, 1): each D update's z, then G's when not reuse_fake."""

    @classmethod
    def empty(cls, config: Config, device: str, seeds: tuple[int, ...] = ()) -> StepInputs:
        """Buffers for one step; ``seeds=(S,)`` adds a seed dimension after the first (stacks)."""
        batch, steps = config.batch_size, config.discriminator_steps
        noise_batches = steps + (0 if config.reuse_fake else 1)
        return cls(
            indices=torch.zeros(steps, *seeds, batch, dtype=torch.long, device=device),
            flips=torch.zeros(steps, *seeds, batch, device=device) if config.hflip else None,
            noise=torch.zeros(noise_batches, *seeds, batch, config.latent_dim, 1, 1, device=device),
        )


def draw_inputs(inputs: StepInputs, order: DataOrder) -> StepInputs:
    """Fill a lone run's ``inputs`` with one step's draws from the global generator
    (``draw_seeds`` for one seed)."""
    return draw_seeds(inputs, [order], [None])


def draw_seeds(inputs: StepInputs, orders: list[DataOrder], streams: list) -> StepInputs:
    """Fill ``inputs`` with one step's draws, in the order a lone run always drew them: per D
    update the batch's indices, its flips, its noise; then G's noise (not reuse_fake). A stack
    (seed dimension second) draws each seed's from that seed's order and stream, in its lone
    run's order (per D update: indices and flips of every seed, then every seed's noise).

    :param streams: each seed's generator; None draws from the global one (a lone run).
        ``uniform_``/``normal_`` in place are what ``torch.rand``/``torch.randn`` run on a fresh
        tensor, so the values are the same as before the split, bit for bit
        (tests/test_gan_graphs.py).
    """
    seeded = inputs.indices.dim() == 3

    def per_seed(buffer: torch.Tensor | None) -> list:
        if buffer is None:
            return [None] * len(orders)
        return list(buffer) if seeded else [buffer]

    for index in range(len(inputs.indices)):
        flips = per_seed(None if inputs.flips is None else inputs.flips[index])
        seeds = zip(orders, streams, per_seed(inputs.indices[index]), flips, strict=True)
        for order, stream, indices, flip in seeds:
            indices.copy_(order.next(), non_blocking=True)
            if flip is not None:
                flip.uniform_(generator=stream)  # as random_hflip's draw
        for stream, noise in zip(streams, per_seed(inputs.noise[index]), strict=True):
            noise.normal_(generator=stream)  # as GAN.noise's torch.randn
    for index in range(len(inputs.indices), len(inputs.noise)):
        for stream, noise in zip(streams, per_seed(inputs.noise[index]), strict=True):
            noise.normal_(generator=stream)
    return inputs


def real_images(
    images: torch.Tensor,
    indices: torch.Tensor,
    flips: torch.Tensor | None,
    channels_last: bool = False,
) -> torch.Tensor:
    """The uint8 images at ``indices``, scaled to [-1, 1] and flipped left-right where ``flips``
    < 0.5 (random_hflip's rule). Any leading shape of ``indices`` (a stack's (S, B) too)."""
    batch = to_signed_range(images[indices])
    if flips is not None:
        flip = (flips < 0.5)[(...,) + (None,) * (batch.dim() - flips.dim())]
        batch = torch.where(flip, batch.flip(-1), batch)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def real_batch(data: ImageData, order: DataOrder, gan: GAN, hflip: bool) -> torch.Tensor:
    """The next real batch from the on-device uint8 images, scaled to [-1, 1] and flipped."""
    indices = order.next()
    flips = torch.rand(len(indices), device=indices.device) if hflip else None
    return real_images(data.train, indices, flips, gan.speed.channels_last)


def _losses(config: Config, seeded: bool):
    """D's and G's loss functions; over a seed dimension, each seed's loss on its own logits
    ((S, B) -> (S,))."""
    d_loss = functools.partial(discriminator_loss, loss=config.loss)
    g_loss = functools.partial(generator_loss, loss=config.loss)
    if seeded:
        return torch.func.vmap(d_loss), torch.func.vmap(g_loss)
    return d_loss, g_loss


def compute_step(
    gan,
    optimizers: dict,
    images: torch.Tensor,
    inputs: StepInputs,
    config: Config,
    autocast=None,
    stats: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``discriminator_steps`` D updates, then one G update, on drawn inputs (capture-safe: no
    random draws, no host reads). Returns the (detached) last D loss and the G loss.

    :param gan: a GAN, or a stack of seeds (gans/stacked.py) with the same ``generate``,
        ``discriminate`` and ``speed``; a stack's inputs have a seed dimension, and its losses
        are each seed's, shape (S,). The step minimizes their sum, whose gradient for seed i's
        parameters is seed i's own gradient.
    :param stats: a dict that receives ``discriminator_accuracy``: the last D update's
        ``discriminator_accuracy`` on its batch, before that update (per seed over a stack).
        Only read from the logits the update computes anyway: nothing else changes.
    """
    autocast = autocast or gan.speed.autocast
    d_loss, g_loss = _losses(config, seeded=inputs.indices.dim() == 3)
    for index in range(config.discriminator_steps):
        ############################
        # (1) Update D: real images towards "real", generated images towards "fake"
        ############################
        flips = None if inputs.flips is None else inputs.flips[index]
        real = real_images(images, inputs.indices[index], flips, gan.speed.channels_last)
        # G's graph is kept only for the fake batch the G update reuses (reuse_fake); D's
        # update sees it detached, so D's step never trains G.
        keep_graph = config.reuse_fake and index == config.discriminator_steps - 1
        with torch.set_grad_enabled(keep_graph), autocast():
            fake = gan.generate(inputs.noise[index])
        with autocast():
            # Float32 logits, so that both losses are float32 under autocast (BCE is autocast to
            # float32 anyway, the hinge loss is not).
            real_logits = gan.discriminate(real).float()
            fake_logits = gan.discriminate(fake.detach()).float()
            loss_d = d_loss(real_logits, fake_logits)
        if stats is not None:
            stats["discriminator_accuracy"] = discriminator_accuracy(real_logits, fake_logits)
        optimizers["discriminator"].zero_grad()
        loss_d.sum().backward()
        optimizers["discriminator"].step()
    ############################
    # (2) Update G: make the updated D call generated images "real" (the label flip)
    ############################
    with autocast():
        if not config.reuse_fake:
            fake = gan.generate(inputs.noise[-1])
        fake_logits = gan.discriminate(fake).float()
        loss_g = g_loss(fake_logits)
    optimizers["generator"].zero_grad()
    loss_g.sum().backward()
    optimizers["generator"].step()
    # D's gradients from G's step are not used: its next zero_grad clears them.
    return loss_d.detach(), loss_g.detach()


def replayed_steps(optimizers: dict, config: Config) -> None:
    """The host side of one replayed step: each role optimizer's step count (RoleOptimizer and
    StackedOptimizer ``replayed_step``), D's ``discriminator_steps`` times."""
    for _ in range(config.discriminator_steps):
        optimizers["discriminator"].replayed_step()
    optimizers["generator"].replayed_step()


class StepGraph:
    """The train step on static input buffers, run by suite/run/graphs.py's CapturedStep: a CUDA
    graph of the whole step (D and G updates, optimizer steps) after a few eager warm-up steps
    when ``enabled`` on CUDA; the same function eagerly elsewhere. ``train_step(..., graph=)``
    draws into ``inputs`` and calls it.

    :param compute: the capture-safe compute part, a function of no arguments reading ``inputs``.
    :param stats: the dict ``compute`` writes its step statistics to (compute_step's
        ``stats``); once captured, its tensors are static outputs, overwritten by each replay.
    """

    def __init__(
        self,
        inputs: StepInputs,
        compute,
        device: str,
        enabled: bool,
        host_effects,
        stats: dict | None = None,
    ):
        self.inputs = inputs
        self.captured = CapturedStep(compute, device, enabled, host_effects=host_effects)
        self.stats = {} if stats is None else stats

    @classmethod
    def build(cls, gan, optimizers: dict, images: torch.Tensor, config: Config, enabled: bool):
        """The step graph of a GAN, or of a stack of seeds (``gan``: gans/stacked.py), on the
        run's device (the images').

        Inside a capture, autocast must not cache casts (torch's CUDA-graphs notes; weight
        gradients then differ in rounding, SpeedSettings.autocast). Graph off: the cached
        autocast, so a run without a graph trains as before, bit for bit.
        """
        inputs, stats = StepInputs.empty(config, images.device, gan.seed_shape), {}
        autocast = functools.partial(gan.speed.autocast, cache_enabled=not enabled)
        compute = functools.partial(
            compute_step, gan, optimizers, images, inputs, config, autocast, stats
        )
        host = functools.partial(replayed_steps, optimizers, config)
        return cls(inputs, compute, images.device, enabled, host, stats)

    @classmethod
    def lone(cls, gan: GAN, optimizers: dict, data: ImageData, config: Config, enabled: bool):
        """A lone DCGAN's step graph (train_step's ``graph``)."""
        return cls.build(gan, optimizers, data.train, config, enabled)

    def __call__(self):
        return self.captured()

    @property
    def discriminator_accuracy(self) -> torch.Tensor:
        """The last call's ``discriminator_accuracy`` (compute_step's ``stats``): a static output
        once captured, like the losses, so read or add it before the next call."""
        return self.stats["discriminator_accuracy"]


def train_step(
    gan: GAN,
    optimizers: dict[str, RoleOptimizer],
    data: ImageData,
    order: DataOrder,
    config: Config,
    graph: StepGraph | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``discriminator_steps`` D updates, then one G update. Returns the (detached) last D loss
    and the G loss as tensors: no host sync here, the caller reads them at log intervals.

    :param graph: the run's StepGraph (``StepGraph.lone``): the draws go to its static buffers
        and the step runs through it (a CUDA graph replay once captured). Its returned losses
        are then the graph's static outputs, overwritten by the next step: read (or add) them
        before the next call, or clone them. None: fresh buffers, eager.
    """
    if graph is None:
        inputs = draw_inputs(StepInputs.empty(config, gan.device), order)
        return compute_step(gan, optimizers, data.train, inputs, config)
    draw_inputs(graph.inputs, order)
    return graph()


def graphs_status(config: Config, specs: dict[str, OptimizerSpec], device: str) -> str:
    """Whether the whole train step runs as a CUDA graph (``cuda_graphs``): "on", or "off:
    <reason>" (recorded in the result's details as ``cuda_graphs``)."""
    if not config.cuda_graphs:
        return "off: task.cuda_graphs is false"
    if torch.device(device).type != "cuda":
        return f"off: CUDA only (device {device})"
    for role in ROLES:
        reason = capture_blockers(specs[role])
        if reason is not None:
            return f"off: {role}: {reason}"
    return "on"


# --- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def generate_images(gan: GAN, noise: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Images in [-1, 1] (float32) for the given noise. Batch-norm uses batch statistics (train
    mode), as pytorch/examples' sample grids do; running averages lag a GAN's generator."""
    chunks = []
    for z in noise.split(batch):
        with gan.autocast():
            chunks.append(gan.generate(z).float())
    return torch.cat(chunks)


def evaluate(gan: GAN, scorer: Scorer, noise: torch.Tensor) -> dict[str, float]:
    """Scores and collapse statistics of generated images (``noise`` is the same every time)."""
    images = generate_images(gan, noise)
    collapse = collapse_statistics(images)
    metrics = {"eval/collapsed": collapse["collapsed"]}
    metrics["eval/sample_std"] = collapse["across_samples_std"]
    if torch.isfinite(images).all():
        metrics.update(scorer.score(to_uint8(images)))
    return metrics


def parameter_sum(module: nn.Module) -> torch.Tensor:
    return sum(p.detach().float().sum() for p in module.parameters())


# --- early training, for CLAIMS.md's GAN rules -------------------------------------------------
#
# "Generator Adam with low beta1 suppresses early oscillation; RMSprop discriminator avoids early
# convergence and mode collapse" (CLAIMS.md Part 1, general rules) speaks of early training
# without saying how early. The early window is the first EARLY_PERCENT of the generator steps:
# a fraction of the budget, not a fixed count, so it is the same part of training at every
# budget (the first 400 of a 2,000-step run, the first 6,000 of DCGAN's 30,000); a fifth is long
# enough for a mean over it to average out minibatch noise (hundreds of steps at the quick and
# full budgets), and leaves the rest of the run to the outcome metrics (IS, FID, collapse) the
# rules' "avoids mode collapse" and the claims are judged on. Computed from the per-step losses
# and logits the loop already has (no extra forward passes, no host reads).

EARLY_PERCENT = 20
"""the early window: the first EARLY_PERCENT % of the generator steps, rounded up."""
MIN_EARLY_STEPS = 10
"""fewer steps in the window than this (runs of fewer than 46 generator steps, such as the
smoke budgets of the full-width files): the early statistics are not recorded, a mean absolute
change over a few minibatches measures nothing."""
EARLY_METRICS = (
    "train/early_discriminator_loss_change",
    "train/early_generator_loss_change",
    "train/early_discriminator_accuracy",
)
"""what ``early_metrics`` records (defined there; glossary: suite/report/render.py)."""


def early_window(generator_steps: int) -> int:
    """Generator steps in the early window, ceil(EARLY_PERCENT% of ``generator_steps``), or 0
    when that is fewer than MIN_EARLY_STEPS (the early statistics are then not recorded)."""
    window = -(-generator_steps * EARLY_PERCENT // 100)  # integer ceil: no float rounding
    return window if window >= MIN_EARLY_STEPS else 0


def early_update(
    early: torch.Tensor, step: int, losses: torch.Tensor, accuracy: torch.Tensor
) -> None:
    """Add generator step ``step`` (1-based, inside the early window) to the early sums, in
    place, on the device (no host sync).

    :param early: the sums, shape (..., 5): [sum |D loss - previous D loss|, the same for G,
        sum of D's accuracy, this step's D loss, G loss] (the last two: the previous step's for
        the next call). A stack's leading dimension is the seeds.
    :param losses: this step's [D loss, G loss], shape (..., 2): the last D update's loss (the
        one ``train/loss_discriminator`` averages) and the G update's.
    :param accuracy: ``discriminator_accuracy`` of this step's last D update, shape (...).
    """
    if step > 1:
        early[..., :2] += (losses - early[..., 3:]).abs()
    early[..., 2] += accuracy
    early[..., 3:] = losses


def early_metrics(early: list[float], window: int) -> dict[str, float]:
    """The early statistics of one seed from its sums after the window (``early_update``):

    - ``train/early_{discriminator,generator}_loss_change``: the mean absolute step-to-step
      change of the per-step loss, sum_{t=2..W} |l_t - l_(t-1)| / (W - 1), over the window's W
      generator steps. In the loss's units per step (nats for BCE), >= 0; higher = the losses
      swing more from one step to the next. A slow trend adds only its total drift / (W - 1), so
      this is the oscillation and minibatch noise, not how far the loss moved (a standard
      deviation over the window would mostly measure the early trend).
    - ``train/early_discriminator_accuracy``: the mean over the W steps of D's accuracy on its
      own batch (real and generated halves, before its update: ``discriminator_accuracy``), in
      [0, 1]; near 1 = D separates real from generated images early (early convergence).

    Empty when the window is off (``window`` 0) or a sum is not finite (a checkpoint written
    before these sums existed): a claim then counts the run as missing the metric.
    """
    if window < 2 or not all(math.isfinite(x) for x in early[:3]):
        return {}
    d_change, g_change, accuracy = early[0] / (window - 1), early[1] / (window - 1), early[2]
    values = (d_change, g_change, accuracy / window)
    return dict(zip(EARLY_METRICS, values, strict=True))


def early_point(states: list, device) -> torch.Tensor:
    """Each seed's early sums (S, 5) where its loop starts: zeros for a fresh start, else its
    checkpoint's (NaN for a checkpoint that has none: its early statistics are not recorded)."""
    if states[0] is None:
        return torch.zeros(len(states), 5, device=device)
    rows = [torch.full((5,), math.nan) if s.early_sums is None else s.early_sums for s in states]
    return torch.stack(rows).to(device)


# --- the run -----------------------------------------------------------------------------------
#
# One loop trains a lone run and a stack of seeds (gans/stacked.py, ``suite run --stack-seeds``):
# ``train_seeds`` gets a ``Lone`` GAN here, a ``stacked.Stacked`` there, with the same methods;
# each seed checkpoints a TrainState in one format, so a stack resumes lone and the other way.


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    torch.manual_seed(ctx.seed)
    data = load_image_data(config.data, log=ctx.log).to(ctx.device)
    gan = build(config, data.train.shape[1], ctx.device)
    graphs = graphs_status(config, specs, ctx.device)
    optimizers = build_optimizers(gan, specs, capturable=graphs == "on")
    order = DataOrder(len(data.train), config.batch_size, ctx.seed, ctx.device)
    saved = TrainState.load(ctx)
    if saved is not None:
        saved.restore(networks(gan), optimizers, order)
    started = time.perf_counter()
    scorer = build_scorer(config, data, ctx)  # a tiny classifier is kept in ctx.run_dir
    ctx.log(f"scorer ready in {time.perf_counter() - started:.1f} s: {scorer.network.name}")
    # Last, after everything that draws at construction (weight init, the scorer): the global
    # generators that flips and training noise come from continue where the checkpoint left them.
    ctx.restore_rng()
    # Built after the restore: the graph captures the restored optimizer state's tensors.
    graph = StepGraph.lone(gan, optimizers, data, config, enabled=graphs == "on")
    lone = Lone(networks(gan), optimizers, order, gan, graph, graphs)
    (result,) = train_seeds(lone, config, data, [ctx], [saved], [scorer])
    return result


@dataclass
class Lone(LoneSeed):
    """A lone run as ``train_seeds`` trains it (gans/stacked.py: ``Stacked``, for S seeds)."""

    gan: GAN
    graph: StepGraph
    graphs: str
    """graphs_status: "on" or "off: <reason>"."""

    def step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One train step: the last D loss, the G loss and D's accuracy (StepGraph)."""
        draw_inputs(self.graph.inputs, self.order)
        loss_d, loss_g = self.graph()
        return loss_d, loss_g, self.graph.discriminator_accuracy

    def parameter_sums(self) -> dict[str, list[torch.Tensor]]:
        """Each role's parameter sum, per seed: NaN or inf means diverged."""
        return {role: [parameter_sum(module)] for role, module in self.modules.items()}

    def seed_gan(self, i: int) -> GAN:
        return self.gan


def train_seeds(seeds, config: Config, data: ImageData, contexts, states, scorers) -> list[Result]:
    """The training loop of a lone run (``seeds``: a Lone) or of a stack (gans/stacked.py):
    every seed's curves, scores, checkpoints and result, from fresh or from checkpoints at one
    step (``states``: each seed's TrainState or None).

    :param scorers: each seed's Scorer (gans/scores.py).
    """
    runs = SeedRuns(contexts, stacked=seeds.stacked is not None)
    step, since_log, sums, last_evals = resume_point(states, (2,), data.train.device)
    early, window = early_point(states, data.train.device), early_window(config.generator_steps)
    total = config.generator_steps
    while step < total and runs.live:
        loss_d, loss_g, accuracy = seeds.step()
        # Added now, before the next step overwrites the graph's static losses.
        losses = torch.stack([loss_d.float(), loss_g.float()], dim=-1)
        sums += losses
        step, since_log = step + 1, since_log + 1
        if step <= window:
            early_update(early, step, losses, accuracy)
        runs.progress(step, total)
        if step % config.log_every == 0 or step == total:
            means = (sums / since_log).tolist()
            lrs = {f"train/lr_{role}": o.lr for role, o in seeds.optimizers.items()}
            for i in list(runs.live):
                d, g = means[i]
                record = {"train/loss_discriminator": d, "train/loss_generator": g, **lrs}
                runs.check(i, step, record, loss_discriminator=d, loss_generator=g)
            sums.zero_()
            since_log = 0
        if step % config.eval_every == 0 or step == total:
            finite = seeds.parameter_sums()
            for i in list(runs.live):
                values = {f"{role}_parameters": per_seed[i] for role, per_seed in finite.items()}
                if not runs.check(i, step, **values):
                    continue
                ctx, gan = contexts[i], seeds.seed_gan(i)
                last_evals[i] = evaluate(gan, scorers[i], eval_noise(gan, config, ctx.seed))
                ctx.record(step, last_evals[i])
                state = TrainState(**seeds.seed_state(i), loss_sums=sums[i], step=step,
                                   since_log=since_log, last_eval=last_evals[i],
                                   early_sums=early[i])  # fmt: skip
                ctx.save_checkpoint(state.state_dict(), rng=seeds.rng(i))
    early_sums = early.tolist()
    for i in runs.live:
        last_eval = {**last_evals[i], **early_metrics(early_sums[i], window)}
        runs.outcomes[i] = seed_result(seeds, i, config, data, contexts[i], scorers[i], last_eval)
    return runs.results()


def eval_noise(gan: GAN, config: Config, seed: int) -> torch.Tensor:
    """The fixed noise seed ``seed`` is scored with, from a generator of its own: scoring never
    moves the training RNG, so a resumed run and an uninterrupted one train identically."""
    generator = torch.Generator(gan.device).manual_seed(10_000 + seed)
    return gan.noise(config.eval_samples, generator)


def seed_result(seeds, i: int, config: Config, data: ImageData, ctx, scorer, last_eval) -> Result:
    """Seed i's sample grid (fixed noise) and result, at the end of training."""
    gan = seeds.seed_gan(i)
    grid_noise = gan.noise(64, torch.Generator(ctx.device).manual_seed(ctx.seed))
    save_image(generate_images(gan, grid_noise), ctx.run_dir / "samples.png", nrow=8,
               normalize=True, value_range=(-1, 1))  # fmt: skip
    optimizers = seeds.role_optimizers()
    details = run_details(config, data, scorer, optimizers, last_eval, gan.speed, seeds.graphs)
    if seeds.stacked is not None:
        details["stacked"] = seeds.stacked
    return ctx.result(
        final_metrics(last_eval, scorer), details=details, artifacts={"samples": "samples.png"}
    )


def networks(gan: GAN) -> dict[str, nn.Module]:
    """The modules a checkpoint holds, by their TrainState names."""
    return {"generator": gan.generator, "discriminator": gan.discriminator}


def final_metrics(last_eval: dict[str, float], scorer: Scorer) -> dict[str, float]:
    """The result's metrics: the last evaluation's collapse flag and scores (IS, FID, effective
    classes), and the early statistics (``early_metrics``) where ``train_seeds`` added them to
    ``last_eval``."""
    metrics = {"eval/collapsed": last_eval["eval/collapsed"]}
    for key in (*scorer.keys, scorer.classes_key, *EARLY_METRICS):
        if key in last_eval:
            metrics[key] = last_eval[key]
    return metrics


def run_details(
    config: Config,
    data: ImageData,
    scorer: Scorer,
    optimizers,
    last_eval,
    speed: SpeedSettings,
    cuda_graphs: str,
) -> dict:
    details = {
        "scores": scorer.details(config.eval_samples),
        "metric_scales": scorer.metric_scales(),
        "data": {
            "name": data.name,
            "source": data.description,
            "train_images": len(data.train),
            "image_size": config.data.image_size,
        },
        "collapsed": bool(last_eval["eval/collapsed"]),
        "speed_settings": asdict(speed),  # what ran: bf16 and fp32 runs differ in their numbers
        "cuda_graphs": cuda_graphs,  # graphs_status: "on" or "off: <reason>"
        **scorer.summary(),  # the reference set, FID floor and calibration, printed by the report
    }
    if details["collapsed"]:
        details["collapse_note"] = (
            "the generator produced (near-)constant images at the last evaluation "
            f"(per-pixel std across samples {last_eval['eval/sample_std']:.4f}): a collapsed run"
        )
    details.update(role_details(optimizers))
    return details
