"""Many seeds of one arm as one stacked model (``suite run --stack-seeds``): the machinery that
is not specific to a model.

Each seed keeps its own weights, optimizer state, random stream and checkpoint in its lone run's
format. A model's stack (gans/stacked.py, vae/stacked.py) lays out its parameters with a seed
dimension (grouped convolutions or ``torch.func.stack_module_state``) and provides ``split`` /
``join`` for it; this module builds per-seed optimizers over such parameters (one optimizer per
role, valid only for elementwise updates: suite/optimizers: ``check_stackable``), clips per
seed, slices and joins optimizer states, and runs per-seed bookkeeping.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from suite.optimizers import OptimizerSpec, RoleOptimizer, build_role_optimizer, check_stackable
from suite.result import Result
from suite.run.context import Diverged, RunContext, rng_state


class LeadingSeedDimension:
    """split/join for stacks made by torch.func.stack_module_state: a leading seed dimension."""

    def split(self, tensor: torch.Tensor, seed_index: int) -> torch.Tensor:
        """Seed ``seed_index``'s slice of a stacked tensor."""
        return tensor[seed_index]

    def join(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(tensors)


class StackedModules(LeadingSeedDimension):
    """A stack made by torch.func.stack_module_state (gans/stacked.py VmapStack, vae/stacked.py
    VaeStack): ``state`` maps each network to its stacked (parameters, buffers), seed first."""

    state: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]

    def to(self, device: str):
        for params, buffers in self.state.values():
            for group in (params, buffers):
                for name, tensor in group.items():
                    moved = tensor.detach().to(device)
                    group[name] = moved.requires_grad_(tensor.requires_grad)
        return self

    def seed_state_dict(self, seed_index: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed ``seed_index``'s weights and buffers as its lone networks' state dicts."""
        return {
            network: {
                name: t[seed_index].detach().clone()
                for group in groups
                for name, t in group.items()
            }
            for network, groups in self.state.items()
        }


@dataclasses.dataclass
class SeedStreams:
    """Per-seed data order and random stream, each what seed i's lone run would use."""

    orders: list
    """each seed's data order (gans/data.py DataOrder, at its checkpoint's position)."""
    generators: list[torch.Generator]
    """each seed's random stream (``continuing_stream``)."""


def continuing_stream(seed: int, device: str, saved_rng: dict | None = None) -> torch.Generator:
    """The random stream seed ``seed``'s lone run draws flips, noise (or, for the VAE, its
    reparameterization noise) from after building.

    On the CPU that is the global generator after initialization; on CUDA the lone run's noise
    comes from the CUDA generator, which initialization (done on the CPU) did not touch. A
    resumed seed continues from its checkpoint's generator states (``saved_rng``, in the lone
    run's format: see ``lone_rng``).
    """
    stream = torch.Generator(device)
    if saved_rng is not None:
        if device == "cpu":
            stream.set_state(saved_rng["torch"])
        else:
            stream.set_state(saved_rng["cuda"][torch.device(device).index or 0])
    elif device == "cpu":
        stream.set_state(torch.get_rng_state())
    else:
        stream.manual_seed(seed)
    return stream


def lone_rng(stream: torch.Generator) -> dict:
    """The generator states a lone run would checkpoint (suite.run.context.rng_state's format), with
    the global generator it draws training randomness from replaced by this seed's stream: a
    stacked seed's checkpoint resumes as a lone run, and the other way round."""

    state = rng_state()
    if stream.device.type == "cpu":
        state["torch"] = stream.get_state()
    else:
        cuda = list(state.get("cuda") or torch.cuda.get_rng_state_all())
        cuda[stream.device.index or 0] = stream.get_state()
        state["cuda"] = cuda
    return state


def build_stacked_optimizers(
    stack, specs: dict[str, OptimizerSpec], capturable: bool = False
) -> dict[str, StackedOptimizer]:
    """One optimizer per role over all seeds' parameters (elementwise optimizers only);
    ``capturable`` for a step captured in a CUDA graph (build_role_optimizer)."""
    return stacked_role_optimizers(stack.role_parameters(), stack.seeds, specs, capturable)


def stacked_role_optimizers(
    role_parameters: dict[str, list[torch.Tensor]],
    seeds: int,
    specs: dict[str, OptimizerSpec],
    capturable: bool = False,
) -> dict[str, StackedOptimizer]:
    """Each role's optimizer over its stacked parameters, clipping per seed (shared by the DCGAN
    and VAE stacks); ``capturable``: for a step captured in a CUDA graph (build_role_optimizer)."""
    optimizers = {}
    for role, params in role_parameters.items():
        check_stackable(role, specs[role])
        # Clipping is per seed (StackedOptimizer); the role optimizer must not clip the stack.
        unclipped = dataclasses.replace(specs[role], clip_grad_norm=None)
        inner = build_role_optimizer(role, unclipped, params, capturable=capturable)
        optimizers[role] = StackedOptimizer(inner, seeds, specs[role].clip_grad_norm)
    return optimizers


class StackedOptimizer:
    """A role optimizer over stacked seeds, with gradient-norm clipping per seed."""

    def __init__(self, inner: RoleOptimizer, seeds: int, clip_grad_norm: float | None):
        self.inner, self.seeds, self.clip_grad_norm = inner, seeds, clip_grad_norm
        self.last_grad_norms: torch.Tensor | None = None

    @property
    def lr(self) -> float:
        """The role's current learning rate (every seed's: they share the schedule)."""
        return self.inner.lr

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    def step(self) -> None:
        if self.clip_grad_norm is not None:
            self.last_grad_norms = clip_per_seed(self.inner.params, self.seeds, self.clip_grad_norm)
        self.inner.step()

    def replayed_step(self) -> None:
        """The host side of a ``step`` a CUDA graph replayed (RoleOptimizer.replayed_step)."""
        self.inner.replayed_step()


@torch.no_grad()
def clip_per_seed(params: list[torch.Tensor], seeds: int, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ for each seed's slice of stacked parameters (seed-major
    along dimension 0). Returns the seeds' total norms before clipping."""
    grads = [p.grad.view(seeds, -1) for p in params if p.grad is not None]
    norms = torch.stack([g.float().pow(2).sum(1) for g in grads]).sum(0).sqrt()
    # The same coefficient as clip_grad_norm_: max_norm / (norm + 1e-6), at most 1.
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale[:, None].to(g.dtype))
    return norms


def seed_optimizer_state(state: dict, params: list[torch.Tensor], seed_index: int, split) -> dict:
    """Seed ``seed_index``'s part of a stacked RoleOptimizer's ``state_dict()``: the state its lone
    run's RoleOptimizer would have. Per-element entries (moments, Lookahead's slow weights: the
    shape of their stacked parameter) are sliced with ``split``; the rest (step counts,
    hyperparameters, the schedule) is shared by the seeds and copied."""
    shapes = [p.shape for p in params]

    def convert(index: int, name: str, values: list):
        (value,) = values
        if torch.is_tensor(value) and value.shape == shapes[index]:
            return split(value, seed_index).clone()
        return copy.deepcopy(value)

    return _zip_role_states([state], convert)


def joined_optimizer_state(states: list[dict], params: list[torch.Tensor], split, join) -> dict:
    """The stacked RoleOptimizer state of the seeds' lone states (``seed_optimizer_state``'s
    inverse). A 0-dim parameter's moments are 0-dim like the optimizers' ``step`` counters, which
    are told apart by name."""
    shapes = [split(p, 0).shape for p in params]

    def convert(index: int, name: str, values: list):
        first = values[0]
        per_element = torch.is_tensor(first) and first.shape == shapes[index]
        if per_element and (first.dim() > 0 or name != "step"):
            return join([value.to(params[index].device) for value in values])
        return copy.deepcopy(first)

    return _zip_role_states(states, convert)


def seed_optimizers(optimizers: dict, role_params: dict, seed_index: int, stack) -> dict:
    """Seed ``seed_index``'s RoleOptimizer states, role by role, as its lone run saves them."""
    return {
        role: seed_optimizer_state(o.inner.state_dict(), role_params[role], seed_index, stack.split)
        for role, o in optimizers.items()
    }


def load_seed_optimizers(optimizers: dict, seed_states: list[dict], stack) -> None:
    """Load the seeds' lone RoleOptimizer states (role -> state, one dict per seed) into the
    stacked optimizers."""
    for role, optimizer in optimizers.items():
        lone = [states[role] for states in seed_states]
        joined = joined_optimizer_state(lone, optimizer.inner.params, stack.split, stack.join)
        optimizer.inner.load_state_dict(joined)


def _zip_role_states(states: list[dict], convert) -> dict:
    """One RoleOptimizer state from several, ``convert(param_index, name, values)`` per entry."""
    first = states[0]
    return {
        "optimizer": _zip_optimizer_states([s["optimizer"] for s in states], convert),
        "scheduler": copy.deepcopy(first["scheduler"]),
        "steps": first["steps"],
    }


def _zip_optimizer_states(states: list[dict], convert) -> dict:
    first = states[0]
    if "inner" in first:  # suite.optimizers.extra.Lookahead: slow weights per parameter
        return {
            "inner": _zip_optimizer_states([s["inner"] for s in states], convert),
            "slow": [
                convert(i, "slow", [s["slow"][i] for s in states])
                for i in range(len(first["slow"]))
            ],
            "counter": first["counter"],
        }
    return {  # a torch optimizer's state_dict: per-parameter entries under their index
        "state": {
            index: {
                name: convert(index, name, [s["state"][index][name] for s in states])
                for name in entry
            }  # fmt: skip
            for index, entry in first["state"].items()
        },
        "param_groups": copy.deepcopy(first["param_groups"]),
    }


def parameter_sums(stack, params: list[torch.Tensor]) -> torch.Tensor:
    """Each seed's sum of ``params`` (stacked), shape (S,): NaN or inf there means diverged."""
    return torch.stack(
        [sum(stack.split(p.detach(), i).float().sum() for p in params) for i in range(stack.seeds)]
    )


def in_step_groups(contexts: list[RunContext], train_group, load, step=None) -> list[Result]:
    """Load each seed's checkpoint and train the seeds that stand at the same step as one stack
    (``train_group(contexts, states) -> results``); results in the order of ``contexts``.

    :param load: ``load(ctx) -> state or None``: the seed's checkpoint (gans/train_state.py
        ``TrainState.load``); ``train_group`` gets these states.
    :param step: ``step(state) -> int``: the step a state stands at (default ``state.step``).
    """
    step = step or (lambda state: state.step)
    states = [load(ctx) for ctx in contexts]
    by_step: dict[int, list[int]] = {}
    for index, state in enumerate(states):
        by_step.setdefault(0 if state is None else step(state), []).append(index)
    results: dict[int, Result] = {}
    for indices in by_step.values():
        group = train_group([contexts[i] for i in indices], [states[i] for i in indices])
        results.update(zip(indices, group, strict=True))
    return [results[i] for i in range(len(contexts))]


class SeedRuns:
    """The runs one training loop trains, a lone run or the seeds of a stack: which of them are
    still training (``live``) and the results of those that ended (``outcomes``)."""

    def __init__(self, contexts: list[RunContext], stacked: bool):
        """:param stacked: a stacked seed that diverges is recorded and drops out while the
        others go on; a lone run's divergence raises Diverged (the worker records it)."""
        self.contexts, self.stacked = contexts, stacked
        self.live = list(range(len(contexts)))
        self.outcomes: dict[int, Result] = {}

    def progress(self, step: int, total: int) -> None:
        for i in self.live:
            self.contexts[i].progress(step, total)

    def check(self, i: int, step: int, record: dict | None = None, **values) -> bool:
        """Record seed i's ``record`` and say True if ``values`` are finite; else seed i has
        diverged (see ``stacked``)."""
        ctx = self.contexts[i]
        try:
            ctx.check_finite(step, **values)
        except Diverged as diverged:
            if not self.stacked:
                raise
            self.outcomes[i] = ctx.diverged_result(diverged)
            self.live.remove(i)
            return False
        if record is not None:
            ctx.record(step, record)
        return True

    def results(self) -> list[Result]:
        """Every seed's result, in the order of the contexts."""
        return [self.outcomes[i] for i in range(len(self.contexts))]


def stack_details(seeds: int, method: str) -> dict:
    return {
        "seeds": seeds,
        "method": method,
        "note": "trained with the arm's other seeds as one stacked model in one process: the "
        "wall time and peak memory are the stack's",
    }


def lone_models(
    build,
    networks,
    config,
    channels: int,
    seeds: list[int],
    device: str,
    states=None,
    saved_rngs=None,
) -> tuple[list, list[torch.Generator]]:
    """Each seed's model built exactly as its lone run builds it, and its random stream.

    Seeded with the seed, built on the CPU in fp32, eager and in the default memory format (the
    stack has its own kernels), with the seed's checkpointed weights loaded where it has a
    checkpoint, and a generator continuing where its checkpoint left off.

    :param build: ``build(config, channels, device) -> model`` (gans.dcgan.build, vae.vae.build).
    :param networks: ``networks(model) -> {name: module}``, the names its TrainState saves.
    :param states: each seed's checkpoint (a TrainState with ``weights``) or None.
    :param saved_rngs: each seed's checkpointed generator states (``ctx.saved_rng``) or None.
    """
    lone = dataclasses.replace(config, compile=False, channels_last=False)
    states = states or [None] * len(seeds)
    saved_rngs = saved_rngs or [None] * len(seeds)
    models, streams = [], []
    for seed, state, saved_rng in zip(seeds, states, saved_rngs, strict=True):
        torch.manual_seed(seed)
        model = build(lone, channels, "cpu")
        if state is not None:
            for name, module in networks(model).items():
                module.load_state_dict(state.weights[name])
        models.append(model)
        streams.append(continuing_stream(seed, device, saved_rng))
    return models, streams
