"""Many seeds of one DCGAN arm in one process: S seeds trained as one stacked model.

One DCGAN at batch 64 uses a few percent of a large GPU; training the seeds of an arm together
fills it. Seed i of the stack is seed i trained alone with gans/dcgan.py's ``train_step`` after
``torch.manual_seed(i)`` and ``build``: the same initial weights (built by dcgan.build itself),
its own data order (a DataOrder with its seed), its own flips and noise (a generator that
continues the random stream the lone run would draw from), its own optimizer state and its own
BatchNorm statistics. Nothing is shared between seeds except the kernels that run them.

Two ways to run a stack, with one interface (``generate``, ``discriminate``, ``parameters``,
``seed_state_dict``):

- ``grouped``: every convolution of dcgan's networks becomes one grouped convolution with
  ``groups=S`` and seed-major channels; a BatchNorm over S*C channels then normalizes each
  seed's channels with that seed's batch, so its statistics are per seed by construction.
- ``vmap``: torch.func.stack_module_state over S dcgan modules and vmap(functional_call); the
  BatchNorm running statistics are stacked buffers, updated per seed.

bench/dcgan_stacked.py measures which is faster; tests/test_stacked.py checks seed i against
seed i alone on CPU.

Optimizers: one optimizer over the stacked parameters is S independent optimizers only if its
update is elementwise (SGD, Adam, RMSprop, ...). Gradient-norm clipping is done per seed here.
Optimizers with per-tensor or cross-parameter terms (LAMB's trust ratios, Adafactor's factored
moments, K-FAC's curvature blocks, unknown custom classes) would mix seeds and are refused.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from typing import Literal

import torch
from torch import nn

from gans import dcgan
from gans.data import load_image_data, seed_orders
from gans.scores import build_scorer
from gans.train_state import StackedSeeds
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import RunContext
from suite.run.device import SpeedSettings, speed_settings
from suite.run.stacking import (
    SeedStreams,
    StackedModules,
    StackedOptimizer,
    build_stacked_optimizers,
    in_step_groups,
    load_seed_optimizers,
    lone_models,
    parameter_sums,
)

Method = Literal["grouped", "vmap"]

# --- the grouped stack -------------------------------------------------------------------------


def _grouped_layer(layer: nn.Module, seeds: int) -> nn.Module:
    """The layer for ``seeds`` seeds side by side in the channel dimension."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        if layer.groups != 1 or layer.dilation != (1, 1) or layer.output_padding != (0, 0):
            raise ValueError(f"cannot group {layer}: only plain convolutions are stacked")
        return type(layer)(
            seeds * layer.in_channels,
            seeds * layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            groups=seeds,
            bias=layer.bias is not None,
        )
    if isinstance(layer, nn.BatchNorm2d):
        return nn.BatchNorm2d(seeds * layer.num_features, layer.eps, layer.momentum)
    if any(True for _ in layer.parameters()):
        raise ValueError(f"cannot group {type(layer).__name__}: it has parameters")
    return copy.deepcopy(layer)  # activations


def _grouped_net(singles: list[nn.Sequential]) -> nn.Sequential:
    """One grouped Sequential holding every seed's weights, seed-major along dimension 0.

    Conv2d weights are (out, in, k, k) and ConvTranspose2d weights (in, out, k, k); with
    ``groups=S`` the grouped weight is the seeds' weights concatenated along dimension 0 in
    both cases, and BatchNorm's weights and statistics are concatenated the same way.
    """
    grouped = nn.Sequential(*[_grouped_layer(layer, len(singles)) for layer in singles[0]])
    states = [net.state_dict() for net in singles]
    stacked = {
        name: torch.cat([s[name] for s in states]) if tensor.dim() else tensor.clone()
        for name, tensor in states[0].items()
    }
    grouped.load_state_dict(stacked)
    return grouped


class GroupedStack(nn.Module):
    """S DCGANs as grouped convolutions. Tensors in and out are seed-first: (S, B, ...)."""

    def __init__(
        self,
        generators: list[dcgan.Generator],
        discriminators: list[dcgan.Discriminator],
        speed: SpeedSettings,
    ):
        super().__init__()
        self.seeds, self.seed_shape, self.speed = len(generators), (len(generators),), speed
        self.generator = _grouped_net([g.net for g in generators])
        self.discriminator = _grouped_net([d.net for d in discriminators])

    def _to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) -> (B, S*C, H, W), seed-major channels."""
        seeds, batch = x.shape[:2]
        return x.transpose(0, 1).reshape(batch, seeds * x.shape[2], *x.shape[3:])

    def _from_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S*C, H, W) -> (S, B, C, H, W)."""
        batch = x.shape[0]
        return x.view(batch, self.seeds, -1, *x.shape[2:]).transpose(0, 1)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self._from_channels(self.generator(self._to_channels(z)))

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) -> logits (S, B)."""
        return self._from_channels(self.discriminator(self._to_channels(images))).flatten(2)[..., 0]

    def role_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {
            "generator": list(self.generator.parameters()),
            "discriminator": list(self.discriminator.parameters()),
        }

    def split(self, tensor: torch.Tensor, seed_index: int) -> torch.Tensor:
        """Seed ``seed_index``'s slice of a stacked tensor (seed-major along dimension 0)."""
        return tensor.chunk(self.seeds)[seed_index]

    def join(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The stacked tensor of the seeds' tensors (``split``'s inverse)."""
        return torch.cat(tensors)

    def seed_state_dict(self, seed_index: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed ``seed_index``'s weights and statistics as dcgan.Generator/Discriminator state."""
        return {
            role: {
                f"net.{name}": t.chunk(self.seeds)[seed_index].clone() if t.dim() else t.clone()
                for name, t in getattr(self, role).state_dict().items()
            }
            for role in ("generator", "discriminator")
        }


# --- the vmap stack ----------------------------------------------------------------------------


class Float32BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalizes in float32 and returns its input's dtype (same state dict).

    Under bf16 autocast the convolutions hand BatchNorm bf16 activations with float32 running
    statistics. Eager CUDA batch norm accepts that mix; inside vmap, whose batching rule calls
    batch norm on the stacked statistics without the affine weights, CUDA's kernel refuses it:
    "Expected running_mean to have type BFloat16 but got Float" (torch 2.11 on an H200, issue
    13). Normalizing in float32 is what the mixed-type kernel does internally anyway; without
    autocast the casts are no-ops and the results are bit-identical.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def _float32_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm2d run as a Float32BatchNorm2d (in place)."""
    for layer in module.modules():
        if type(layer) is nn.BatchNorm2d:
            layer.__class__ = Float32BatchNorm2d
    return module


class VmapStack(StackedModules):
    """S DCGANs as stacked parameters run by torch.func.vmap over dcgan's own modules."""

    def __init__(
        self,
        generators: list[dcgan.Generator],
        discriminators: list[dcgan.Discriminator],
        speed: SpeedSettings,
    ):
        self.seeds, self.seed_shape, self.speed = len(generators), (len(generators),), speed
        self.nets = {"generator": generators, "discriminator": discriminators}
        self.state = {}
        self.skeletons = {}
        self.calls = {}
        for role, modules in self.nets.items():
            params, buffers = torch.func.stack_module_state(modules)
            self.state[role] = (params, buffers)
            skeleton = _float32_batch_norms(copy.deepcopy(modules[0]).to("meta"))
            self.skeletons[role] = skeleton
            self.calls[role] = torch.func.vmap(functools.partial(_call, skeleton))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.calls["generator"](*self.state["generator"], z)

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        return self.calls["discriminator"](*self.state["discriminator"], images)

    def role_parameters(self) -> dict[str, list[torch.Tensor]]:
        return {role: list(params.values()) for role, (params, _) in self.state.items()}


def _call(module: nn.Module, params, buffers, x: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(module, (params, buffers), (x,))


# --- building a stack --------------------------------------------------------------------------


def stack_speed(config: dcgan.Config, device: str) -> SpeedSettings:
    """The lone runs' bf16 autocast (suite.run.device.speed_settings); a stack runs in the
    default memory format, not compiled: channels_last and compile are lone-run settings (a
    grouped convolution is the stack's kernel). CUDA graphs (dcgan.StepGraph) apply to stacks."""
    return dataclasses.replace(speed_settings(config, device), channels_last=False, compile=False)


def build_stack(
    config: dcgan.Config,
    seeds: list[int],
    channels: int,
    image_count: int,
    device: str,
    method: Method,
    states: list[dict | None] | None = None,
    saved_rngs: list[dict | None] | None = None,
) -> tuple[GroupedStack | VmapStack, SeedStreams]:
    """Build each seed's networks exactly as a lone run does, then stack them.

    :param image_count: training images (for each seed's DataOrder).
    :param states: each seed's checkpoint (a dcgan.TrainState) or None.
    :param saved_rngs: each seed's checkpointed generator states (``ctx.saved_rng``) or None.
    """
    lone_gans, streams = lone_models(
        dcgan.build, dcgan.networks, config, channels, seeds, device, states, saved_rngs
    )
    generators = [gan.generator for gan in lone_gans]
    discriminators = [gan.discriminator for gan in lone_gans]
    stacks = {"grouped": GroupedStack, "vmap": VmapStack}
    if method not in stacks:
        raise ValueError(f"unknown stacking method {method!r} (valid: grouped, vmap)")
    stack = stacks[method](generators, discriminators, stack_speed(config, device)).to(device)
    orders = seed_orders(image_count, config.batch_size, seeds, device, states)
    return stack, SeedStreams(orders, streams)


# --- one training step for all seeds: dcgan's step over a seed dimension ------------------------


def draw_inputs(inputs: dcgan.StepInputs, streams: SeedStreams) -> dcgan.StepInputs:
    """Fill a stack's step inputs (seed dimension second) with each seed's draws, as its lone run
    draws them (dcgan.draw_seeds)."""
    return dcgan.draw_seeds(inputs, streams.orders, streams.generators)


def compute_step(stack, optimizers, images, inputs, config, autocast=None):
    """dcgan.compute_step for every seed at once; the seeds' D and G losses, shape (S,)."""
    return dcgan.compute_step(stack, optimizers, images, inputs, config, autocast)


def step_graph(stack, optimizers, images, config: dcgan.Config, device: str, enabled: bool):
    """The stack's step on static buffers, a CUDA graph when ``enabled`` (dcgan.StepGraph), with
    the lone runs' autocast (uncached inside a capture). ``device``: the images'."""
    return dcgan.StepGraph.build(stack, optimizers, images, config, enabled)


def train_step(
    stack: GroupedStack | VmapStack,
    optimizers: dict[str, StackedOptimizer],
    images: torch.Tensor,
    streams: SeedStreams,
    config: dcgan.Config,
    autocast=None,
    graph: dcgan.StepGraph | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """dcgan.train_step for every seed at once. Returns the seeds' D and G losses, shape (S,).

    :param graph: the stack's ``step_graph`` (its own autocast; ``autocast`` is then unused):
        the draws go to its static buffers, and its returned losses are overwritten by the next
        step (read or add them first). None: fresh buffers, eager, with ``autocast`` (None: no
        autocast).
    """
    if graph is None:
        inputs = dcgan.StepInputs.empty(config, images.device, stack.seed_shape)
        draw_inputs(inputs, streams)
        autocast = autocast or contextlib.nullcontext
        return dcgan.compute_step(stack, optimizers, images, inputs, config, autocast)
    draw_inputs(graph.inputs, streams)
    return graph()


# --- the run: the seeds of one arm (suite run --stack-seeds) -----------------------------------


def train_stack(
    config: dcgan.Config,
    specs: dict[str, OptimizerSpec],
    contexts: list[RunContext],
    method: Method = "grouped",
) -> list[Result]:
    """dcgan.train for several seeds of one arm at once; ``contexts`` are the seeds' runs.

    Each seed's curves, scores, sample grid, checkpoints and result are what its lone run records
    (to float tolerance: a grouped convolution sums in another order than S convolutions). Seeds
    whose checkpoints stand at different steps train as separate stacks, one after another. A
    seed that diverges is recorded as diverged and drops out; the others go on.
    """
    data = load_image_data(config.data, log=contexts[0].log).to(contexts[0].device)
    train_group = functools.partial(_train_group, config, specs, data, method)
    return in_step_groups(contexts, train_group, dcgan.TrainState.load)


def _train_group(config, specs, data, method, contexts, states) -> list[Result]:
    """One stack, from fresh or from checkpoints at the same step (dcgan.train_seeds)."""
    device, seeds = contexts[0].device, [ctx.seed for ctx in contexts]
    saved_rngs = [ctx.saved_rng for ctx in contexts]
    stack, streams = build_stack(
        config, seeds, data.train.shape[1], len(data.train), device, method, states, saved_rngs
    )
    graphs = dcgan.graphs_status(config, specs, device)
    optimizers = build_stacked_optimizers(stack, specs, capturable=graphs == "on")
    if states[0] is not None:
        load_seed_optimizers(optimizers, [state.optimizers for state in states], stack)
    scorers = _scorers(config, data, contexts)
    # After the optimizers' restore: the graph captures the restored state's tensors.
    graph = dcgan.StepGraph.build(stack, optimizers, data.train, config, graphs == "on")
    role_params = stack.role_parameters()
    stacked = Stacked(stack, optimizers, streams, role_params, method, graph, graphs, config,
                      data.train)  # fmt: skip
    return dcgan.train_seeds(stacked, config, data, contexts, states, scorers)


@dataclasses.dataclass
class Stacked(StackedSeeds):
    """A stack as dcgan.train_seeds trains it: dcgan.Lone's methods for S seeds."""

    graph: dcgan.StepGraph
    graphs: str
    """dcgan.graphs_status: "on" or "off: <reason>"."""
    config: dcgan.Config
    images: torch.Tensor
    """the training images (their channels and device are the seeds' GANs')."""

    def step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One train step of every seed (``train_step`` through the graph): the seeds' last D
        losses, G losses and D accuracies, shape (S,) each."""
        loss_d, loss_g = train_step(self.stack, self.optimizers, self.images, self.streams,
                                    self.config, graph=self.graph)  # fmt: skip
        return loss_d, loss_g, self.graph.discriminator_accuracy

    def parameter_sums(self) -> dict[str, list[float]]:
        roles = self.role_params.items()
        return {role: parameter_sums(self.stack, params).tolist() for role, params in roles}

    def seed_gan(self, i: int) -> dcgan.GAN:
        channels, device = self.images.shape[1], str(self.images.device)
        return seed_gan(self.stack, i, self.config, channels, device)


def _scorers(config: dcgan.Config, data, contexts) -> list:
    """Each seed's scorer, as its lone run builds it: the dataset's cached classifier (or
    Inception) is one network for all seeds, so it is built once; a tiny smoke-run classifier is
    trained per seed, with the seed."""
    if config.classifier == "tiny" and config.scores != "inception":
        return [build_scorer(config, data, ctx) for ctx in contexts]
    shared = build_scorer(config, data, contexts[0])
    return [shared] * len(contexts)


def seed_gan(stack, seed_index: int, config: dcgan.Config, channels: int, device: str):
    """Seed ``seed_index`` as a dcgan.GAN (for dcgan.evaluate and the sample grid)."""
    gan = dcgan.build(dataclasses.replace(config, compile=False), channels, device)
    state = stack.seed_state_dict(seed_index)
    gan.generator.load_state_dict(state["generator"])
    gan.discriminator.load_state_dict(state["discriminator"])
    return gan
