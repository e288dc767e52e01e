"""The DCGAN train step split for CUDA graphs (``task.cuda_graphs``, suite/run/graphs.py): the
host part draws into buffers, the compute part reads only them. On the CPU the split step, with
fresh buffers or with a StepGraph's static ones, must train exactly as the step before the split
(the reference steps below are that code, kept here verbatim), lone and stacked; the reason a
graph is off is recorded; a replay's host effects count optimizer steps as eager steps do."""

from __future__ import annotations

import functools
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from gans import dcgan, stacked
from gans.data import DataOrder, ImageDataConfig, random_hflip, to_signed_range
from suite.optimizers import OptimizerSpec, ScheduleSpec
from tests.test_dcgan import SPECS as RUN_SPECS
from tests.test_dcgan import direct_run, toy_config

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 3
ADAM = OptimizerSpec(optimizer="adam", lr=2.0e-3, kwargs={"betas": [0.5, 0.999]})
SPECS = {
    # Clipping exercises RoleOptimizer's clip (lone) and the per-seed clip (stacked).
    "generator": replace(ADAM, clip_grad_norm=0.05),
    "discriminator": OptimizerSpec(optimizer="rmsprop", lr=1.0e-3),
}


def config(**changes) -> dcgan.Config:
    base = dcgan.Config(
        data=ImageDataConfig(source="folder", path="unused", image_size=28, channels=1),
        latent_dim=8,
        generator_width=4,
        discriminator_width=4,
        batch_size=8,
    )
    return replace(base, **changes)


def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=generator)


# --- the steps before the split (gans/dcgan.py and gans/stacked.py at 789a438), verbatim ------


def old_real_batch(data, order, gan, hflip):
    images = to_signed_range(data.train[order.next()])
    if hflip:
        images = random_hflip(images)
    if gan.speed.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def old_lone_step(gan, optimizers, data, order, config):
    batch = config.batch_size
    for index in range(config.discriminator_steps):
        real = old_real_batch(data, order, gan, config.hflip)
        keep_graph = config.reuse_fake and index == config.discriminator_steps - 1
        with torch.set_grad_enabled(keep_graph), gan.autocast():
            fake = gan.generate(gan.noise(batch))
        with gan.autocast():
            real_logits = gan.discriminate(real).float()
            fake_logits = gan.discriminate(fake.detach()).float()
            loss_d = dcgan.discriminator_loss(real_logits, fake_logits, config.loss)
        optimizers["discriminator"].zero_grad()
        loss_d.backward()
        optimizers["discriminator"].step()
    with gan.autocast():
        if not config.reuse_fake:
            fake = gan.generate(gan.noise(batch))
        fake_logits = gan.discriminate(fake).float()
        loss_g = dcgan.generator_loss(fake_logits, config.loss)
    optimizers["generator"].zero_grad()
    loss_g.backward()
    optimizers["generator"].step()
    return loss_d.detach(), loss_g.detach()


def old_real_batches(images, streams, hflip):
    batches = []
    for order, stream in zip(streams.orders, streams.generators, strict=True):
        batch = to_signed_range(images[order.next()])
        batches.append(random_hflip(batch, stream) if hflip else batch)
    return torch.stack(batches)


def old_noise(streams, batch, latent_dim, device):
    return torch.stack(
        [
            torch.randn(batch, latent_dim, 1, 1, device=device, generator=g)
            for g in streams.generators
        ]
    )


def old_stacked_step(stack, optimizers, images, streams, config):
    device, batch = images.device.type, config.batch_size
    d_loss = torch.func.vmap(functools.partial(dcgan.discriminator_loss, loss=config.loss))
    g_loss = torch.func.vmap(functools.partial(dcgan.generator_loss, loss=config.loss))
    for index in range(config.discriminator_steps):
        real = old_real_batches(images, streams, config.hflip)
        keep_graph = config.reuse_fake and index == config.discriminator_steps - 1
        with torch.set_grad_enabled(keep_graph):
            fake = stack.generate(old_noise(streams, batch, config.latent_dim, device))
        real_logits = stack.discriminate(real).float()
        losses_d = d_loss(real_logits, stack.discriminate(fake.detach()).float())
        optimizers["discriminator"].zero_grad()
        losses_d.sum().backward()
        optimizers["discriminator"].step()
    if not config.reuse_fake:
        fake = stack.generate(old_noise(streams, batch, config.latent_dim, device))
    losses_g = g_loss(stack.discriminate(fake).float())
    optimizers["generator"].zero_grad()
    losses_g.sum().backward()
    optimizers["generator"].step()
    return losses_d.detach(), losses_g.detach()


# --- lone: the split step equals the old one, bit for bit -------------------------------------


def seeded_gan(cfg: dcgan.Config, specs: dict) -> tuple[dcgan.GAN, dict]:
    """Seed 0's one-channel lone GAN and its optimizers, built after ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    gan = dcgan.build(cfg, 1, "cpu")
    return gan, dcgan.build_optimizers(gan, specs)


def train_lone(cfg: dcgan.Config, way: str):
    """STEPS steps of seed 0 the ``way`` given; the final state, the losses, the optimizers and
    the global generator's next draw (draws must be the same in number and order)."""
    data = SimpleNamespace(train=images())
    gan, optimizers = seeded_gan(cfg, SPECS)
    order = DataOrder(len(data.train), cfg.batch_size, 0)
    # Eager on the CPU either way; enabled, its autocast is the uncached one a capture uses.
    graph = dcgan.StepGraph.lone(gan, optimizers, data, cfg, enabled=way == "graph_on")
    losses = []
    for _ in range(STEPS):
        if way == "old":
            loss_d, loss_g = old_lone_step(gan, optimizers, data, order, cfg)
        elif way == "fresh":
            loss_d, loss_g = dcgan.train_step(gan, optimizers, data, order, cfg)
        else:  # graph_off, graph_on
            loss_d, loss_g = dcgan.train_step(gan, optimizers, data, order, cfg, graph)
        losses.append(torch.stack([loss_d, loss_g]).clone())
    state = {**gan.generator.state_dict(), **gan.discriminator.state_dict()}
    return state, torch.stack(losses), optimizers, torch.rand(4)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the default: reuse_fake, one D step, flips
        {"reuse_fake": False, "discriminator_steps": 2, "loss": "hinge"},
        {"hflip": False, "discriminator_steps": 2},
        # bf16 autocast + channels_last on the CPU
        {"cpu_speed_settings": True, "compile": False},
    ],
)
def test_the_split_lone_step_trains_exactly_as_before(changes):
    cfg = config(**changes)
    amp = dcgan.speed_settings(cfg, "cpu").amp
    old_state, old_losses, old_optimizers, old_next = train_lone(cfg, "old")
    for way in ("fresh", "graph_off", "graph_on"):
        state, losses, optimizers, next_draw = train_lone(cfg, way)
        assert state.keys() == old_state.keys()
        if amp and way == "graph_on":
            # Uncached bf16 autocast: D's weight gradients from its real and fake calls are
            # summed in float32, not bf16 (SpeedSettings.autocast): close, not equal.
            assert not torch.equal(losses, old_losses)
            torch.testing.assert_close(losses, old_losses, rtol=2e-2, atol=2e-3)
            for name, tensor in old_state.items():
                torch.testing.assert_close(state[name], tensor, rtol=2e-2, atol=2e-3, msg=name)
        else:
            assert torch.equal(losses, old_losses), way
            for name, tensor in old_state.items():  # weights and batch-norm statistics
                assert torch.equal(state[name], tensor), f"{way}: {name}"
        assert torch.equal(next_draw, old_next), way  # the same draws were taken
        for role, optimizer in optimizers.items():
            assert optimizer.steps == old_optimizers[role].steps


def test_a_step_that_draws_differently_is_caught():
    """The comparison above can fail: the old step with its flip and noise draws swapped."""
    cfg = config()
    data = SimpleNamespace(train=images())
    states = []
    for swap in (False, True):
        gan, optimizers = seeded_gan(cfg, SPECS)
        order = DataOrder(len(data.train), cfg.batch_size, 0)
        inputs = dcgan.StepInputs.empty(cfg, "cpu")
        dcgan.draw_inputs(inputs, order)
        if swap:
            inputs.flips[0] = 1 - inputs.flips[0]
        dcgan.compute_step(gan, optimizers, data.train, inputs, cfg)
        states.append(gan.discriminator.state_dict()["net.0.weight"].clone())
    assert not torch.equal(*states)


# --- stacked: the split step equals the old one, bit for bit ----------------------------------


def train_stack(cfg: dcgan.Config, method: str, way: str):
    data = images()
    stack, streams = stacked.build_stack(cfg, [0, 1, 2], 1, len(data), "cpu", method)
    optimizers = stacked.build_stacked_optimizers(stack, SPECS)
    graph = stacked.step_graph(stack, optimizers, data, cfg, "cpu", enabled=True)
    losses = []
    for _ in range(STEPS):
        if way == "old":
            step = old_stacked_step(stack, optimizers, data, streams, cfg)
        else:
            step = stacked.train_step(stack, optimizers, data, streams, cfg, graph=graph)
        losses.append(torch.stack(step).clone())
    states = [stack.seed_state_dict(i) for i in range(3)]
    next_draws = torch.stack([torch.rand(4, generator=g) for g in streams.generators])
    return states, torch.stack(losses), optimizers, next_draws


@pytest.mark.parametrize("method", ["grouped", "vmap"])
@pytest.mark.parametrize("changes", [{}, {"reuse_fake": False, "discriminator_steps": 2}])
def test_the_split_stacked_step_trains_exactly_as_before(method, changes):
    cfg = config(**changes)
    old_states, old_losses, old_optimizers, old_next = train_stack(cfg, method, "old")
    states, losses, optimizers, next_draws = train_stack(cfg, method, "graph")
    assert losses.shape == (STEPS, 2, 3)
    assert torch.equal(losses, old_losses)
    for seed, (state, old) in enumerate(zip(states, old_states, strict=True)):
        for role in ("generator", "discriminator"):
            for name, tensor in old[role].items():
                assert torch.equal(state[role][name], tensor), f"seed {seed} {role} {name}"
    assert torch.equal(next_draws, old_next)
    norms = optimizers["generator"].last_grad_norms  # per-seed clipping ran inside the step
    assert torch.equal(norms, old_optimizers["generator"].last_grad_norms)
    for role, optimizer in optimizers.items():
        assert optimizer.inner.steps == old_optimizers[role].inner.steps


# --- when graphs are off, and why ---------------------------------------------------------------


def test_graphs_status_names_the_reason():
    cfg = config()
    safe = {"generator": ADAM, "discriminator": SPECS["discriminator"]}
    # The decision reads the device type only: "cuda" needs no GPU here.
    assert dcgan.graphs_status(cfg, safe, "cuda") == "on"
    assert dcgan.graphs_status(cfg, safe, "cuda:1") == "on"
    assert dcgan.graphs_status(cfg, safe, "cpu") == "off: CUDA only (device cpu)"
    off = replace(cfg, cuda_graphs=False)
    assert dcgan.graphs_status(off, safe, "cuda") == "off: task.cuda_graphs is false"
    cosine = replace(ADAM, schedule=ScheduleSpec(name="cosine", kwargs={"T_max": 10}))
    scheduled = {**safe, "discriminator": cosine}
    assert dcgan.graphs_status(cfg, scheduled, "cuda") == (
        "off: discriminator: schedule 'cosine' changes the learning rate from the host"
    )
    lamb = {**safe, "generator": OptimizerSpec(optimizer="lamb", lr=1e-3)}
    assert dcgan.graphs_status(cfg, lamb, "cuda").startswith(
        "off: generator: optimizer 'lamb' keeps host-side step state"
    )


def test_a_cpu_run_records_why_its_graph_is_off(tmp_path, monkeypatch):
    result = direct_run(tmp_path, toy_config(), RUN_SPECS, "cpu", monkeypatch)
    assert result.details["cuda_graphs"] == "off: CUDA only (device cpu)"
    assert result.details["generator_optimizer_steps"] == 4
    assert result.details["discriminator_optimizer_steps"] == 4
    assert "cuda_graphs" not in result.details["speed_settings"]


# --- host effects of a replay --------------------------------------------------------------------


@pytest.mark.parametrize("discriminator_steps", [1, 3])
def test_replayed_steps_count_as_eager_steps(discriminator_steps):
    """A replay runs the device work only; dcgan.replayed_steps (the StepGraph's host effects)
    must leave every step counter where the eager step leaves it: RoleOptimizer.steps, and the
    integer ``step`` of an optimizer that keeps one in Python (rmsprop_deepmind)."""
    cfg = config(discriminator_steps=discriminator_steps)
    specs = {
        "generator": ADAM,
        "discriminator": OptimizerSpec(optimizer="rmsprop_deepmind", lr=1e-4),
    }
    data = SimpleNamespace(train=images())
    counts = []
    for replay in (False, True):
        gan, optimizers = seeded_gan(cfg, specs)
        order = DataOrder(len(data.train), cfg.batch_size, 0)
        dcgan.train_step(gan, optimizers, data, order, cfg)  # creates the optimizer state
        for _ in range(STEPS):
            if replay:
                dcgan.replayed_steps(optimizers, cfg)
            else:
                dcgan.train_step(gan, optimizers, data, order, cfg)
        inner = optimizers["discriminator"].inner
        python_steps = [s["step"] for s in inner.state.values() if isinstance(s["step"], int)]
        counts.append(
            (optimizers["generator"].steps, optimizers["discriminator"].steps, python_steps)
        )
    eager, replayed = counts
    assert eager[:2] == (1 + STEPS, discriminator_steps * (1 + STEPS))
    assert eager[2] and set(eager[2]) == {discriminator_steps * (1 + STEPS)}
    assert replayed == eager


def test_stacked_replayed_steps_count_as_eager_steps():
    cfg = config(discriminator_steps=2)
    data = images()
    stack, streams = stacked.build_stack(cfg, [0, 1], 1, len(data), "cpu", "grouped")
    optimizers = stacked.build_stacked_optimizers(stack, SPECS)
    stacked.train_step(stack, optimizers, data, streams, cfg)
    dcgan.replayed_steps(optimizers, cfg)
    assert optimizers["generator"].inner.steps == 2
    assert optimizers["discriminator"].inner.steps == 4


# --- the compute part is capture-safe: no random draws, no host reads ------------------------

# Ops a CUDA graph cannot hold: random draws (a replay would repeat the captured numbers; the
# host part draws them) and host reads (.item(), bool(), nonzero: a sync, illegal in capture).
UNSAFE = ("normal", "uniform", "rand", "bernoulli", "multinomial", "_local_scalar_dense",
          "nonzero", "is_nonzero", "equal")  # fmt: skip
SGD = OptimizerSpec(optimizer="sgd", lr=1e-2, kwargs={"momentum": 0.9}, clip_grad_norm=0.05)


class OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def unsafe_ops(ops: list[str]) -> set[str]:
    return {op for op in ops if any(op.startswith(name) for name in UNSAFE)}


@pytest.mark.parametrize("method", ["lone", "grouped", "vmap"])
def test_the_compute_part_draws_nothing_and_reads_nothing_to_the_host(method):
    """SGD (its step keeps no counter: torch's non-capturable Adam reads its step with .item()
    on the CPU, and capturable optimizers exist on CUDA only) with gradient clipping."""
    cfg = config(reuse_fake=False, discriminator_steps=2)
    specs = {"generator": SGD, "discriminator": SGD}
    data = images()
    if method == "lone":
        gan, optimizers = seeded_gan(cfg, specs)
        graph = dcgan.StepGraph.lone(gan, optimizers, SimpleNamespace(train=data), cfg, True)
        order = DataOrder(len(data), cfg.batch_size, 0)
        draw = functools.partial(dcgan.draw_inputs, graph.inputs, order)
    else:
        stack, streams = stacked.build_stack(cfg, [0, 1], 1, len(data), "cpu", method)
        optimizers = stacked.build_stacked_optimizers(stack, specs)
        graph = stacked.step_graph(stack, optimizers, data, cfg, "cpu", enabled=True)
        draw = functools.partial(stacked.draw_inputs, graph.inputs, streams)
    for step in range(2):  # the second step: optimizer state exists, as in a capture
        with OpLog() as drawing:
            draw()
        with OpLog() as computing:
            graph()
        assert unsafe_ops(computing.ops) == set(), step
        assert len(computing.ops) > 100  # the log saw the step
    # The log can fail: the host part's draws are random ops.
    assert {"normal_", "uniform_"} <= unsafe_ops(drawing.ops)
