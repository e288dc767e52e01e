"""CUDA graphs of the DCGAN train step (``task.cuda_graphs``) train as the eager step does.

For the lone DCGAN (gans/dcgan.py) and the grouped and vmap seed stacks (gans/stacked.py), the
same model from the same initial state and random streams is trained ``--steps`` steps twice:
eagerly, and through a StepGraph captured as a CUDA graph after its warm-up steps. Both sides run
the very same step function on static buffers with the same optimizers (capturable on CUDA) and
the same uncached autocast, so they differ only in how the kernels are launched. Prints the
largest absolute difference of any parameter or batch-norm statistic and of the losses, the
optimizer step counts (a replay's host effects), and PASS/FAIL per case; exits 1 on a failure.

Tolerance, 1e-5 absolute on weights of scale ~0.02-1: both sides launch the same kernels on the
same inputs with cuDNN in deterministic mode, so they should agree to the last bit; 1e-5 leaves
room for a reduction that is not bitwise reproducible, and is far below what a wrong graph
produces: a step that replays stale inputs or skips an update moves Adam's weights by ~lr (here
1e-3) per step. The check demonstrates it can fail: a negative control replays the graph
without refilling its inputs after the first step and must exceed the tolerance.

bf16 cases (autocast + channels_last, the CUDA default) compare with tolerance 1e-3: bf16
rounds at 2^-8 relative, and a reduction that differs in order by one bf16 ulp in the
activations moves through 20 steps of a GAN; a broken graph still differs by ~lr * steps = 2e-2.

    python bench/gan_graph_check.py --device cuda --steps 20      # the GPU check (< 1 min)
    python bench/gan_graph_check.py --device cuda --compile       # + compiled nets in the graph
    python bench/gan_graph_check.py --device cpu --steps 4        # dry run: eager vs eager
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a clone

from gans import dcgan, stacked  # noqa: E402
from gans.data import DataOrder, ImageData, ImageDataConfig  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402
from suite.run.graphs import WARMUP_STEPS  # noqa: E402

ADAM = OptimizerSpec(optimizer="adam", lr=1e-3, kwargs={"betas": [0.5, 0.999]})
SPECS = {"generator": ADAM, "discriminator": ADAM}
TOLERANCE = {"fp32": 1e-5, "bf16": 1e-3}


def random_data(device: str) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.zeros(len(images), dtype=torch.long)
    return ImageData(images, labels, images[:8], labels[:8], ["x"], "random", "random").to(device)


def uncached(speed):
    """The autocast a capture uses (dcgan.StepGraph), for both sides: the same arithmetic."""
    return functools.partial(speed.autocast, cache_enabled=False) if speed.amp else None


def run_lone(config, data, device, steps, graphs, refill=True):
    """``steps`` lone DCGAN steps; graphs: through a CUDA graph (eager on the CPU)."""
    torch.manual_seed(0)
    gan = dcgan.build(config, 3, device)
    cuda = device.startswith("cuda")
    optimizers = dcgan.build_optimizers(gan, SPECS, capturable=cuda)
    order = DataOrder(len(data.train), config.batch_size, 0, device)
    inputs = dcgan.StepInputs.empty(config, device)
    compute = functools.partial(
        dcgan.compute_step, gan, optimizers, data.train, inputs, config, uncached(gan.speed)
    )
    host = functools.partial(dcgan.replayed_steps, optimizers, config)
    graph = dcgan.StepGraph(inputs, compute, device, graphs, host)
    losses = []
    for index in range(steps):
        if refill or index == 0:
            dcgan.draw_inputs(inputs, order)
        losses.append(torch.stack(graph()).clone())  # before the next replay overwrites them
    state = {**gan.generator.state_dict(), **gan.discriminator.state_dict()}
    counts = {role: o.steps for role, o in optimizers.items()}
    return state, torch.stack(losses), counts, graph.captured.captured


def run_stack(config, data, device, steps, graphs, method):
    """``steps`` steps of a 4-seed stack; graphs: through a CUDA graph (eager on the CPU)."""
    cuda = device.startswith("cuda")
    stack, streams = stacked.build_stack(config, [0, 1, 2, 3], 3, len(data.train), device, method)
    optimizers = stacked.build_stacked_optimizers(stack, SPECS, capturable=cuda)
    inputs = dcgan.StepInputs.empty(config, device, seeds=(stack.seeds,))
    speed = dcgan.speed_settings(config, device)
    compute = functools.partial(
        stacked.compute_step, stack, optimizers, data.train, inputs, config, uncached(speed)
    )
    host = functools.partial(dcgan.replayed_steps, optimizers, config)
    graph = dcgan.StepGraph(inputs, compute, device, graphs, host)
    losses = []
    for _ in range(steps):
        stacked.draw_inputs(inputs, streams)
        losses.append(torch.stack(graph()).clone())
    state = {
        f"{seed}.{role}.{name}": tensor
        for seed in range(stack.seeds)
        for role, tensors in stack.seed_state_dict(seed).items()
        for name, tensor in tensors.items()
    }
    counts = {role: o.inner.steps for role, o in optimizers.items()}
    return state, torch.stack(losses), counts, graph.captured.captured


def largest_difference(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="steps per side (CUDA 20)")
    parser.add_argument("--compile", action="store_true", help="+ compiled nets in the graph")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, cuda = args.device, args.device.startswith("cuda")
    steps = args.steps or (20 if cuda else 4)
    if steps <= WARMUP_STEPS + 1:
        sys.exit(f"--steps must exceed {WARMUP_STEPS + 1}: the graph replays after its warm-up")
    # Deterministic cuDNN: the eager and the replayed kernels then sum in the same order.
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    width = 64 if cuda else 8
    base = dcgan.Config(
        data=ImageDataConfig(), generator_width=width, discriminator_width=width,
        batch_size=64 if cuda else 8, cpu_speed_settings=True, compile=False,
    )  # fmt: skip
    fp32 = dataclasses.replace(base, amp=False, channels_last=False)
    bf16 = dataclasses.replace(base, amp=True, channels_last=True)
    data = random_data(device)
    cases = [
        ("lone fp32", "fp32", functools.partial(run_lone, fp32)),
        ("lone fp32, 2 D steps, fresh fake", "fp32", functools.partial(
            run_lone, dataclasses.replace(fp32, discriminator_steps=2, reuse_fake=False))),
        ("lone bf16 autocast + channels_last", "bf16", functools.partial(run_lone, bf16)),
        ("stack grouped fp32", "fp32", functools.partial(run_stack, fp32, method="grouped")),
        ("stack vmap fp32", "fp32", functools.partial(run_stack, fp32, method="vmap")),
        ("stack grouped bf16 autocast", "bf16", functools.partial(run_stack, bf16,
                                                                  method="grouped")),
    ]  # fmt: skip
    if args.compile:
        compiled = dataclasses.replace(fp32, compile=True)
        cases.append(("lone fp32 torch.compile", "fp32", functools.partial(run_lone, compiled)))
    print(f"device {device}, torch {torch.__version__}, {steps} steps per side; "
          f"{'eager vs CUDA graph' if cuda else 'CPU dry run: eager vs eager'}")  # fmt: skip
    failures = []
    for name, precision, run in cases:
        started = time.perf_counter()
        try:
            eager = run(data=data, device=device, steps=steps, graphs=False)
            graph = run(data=data, device=device, steps=steps, graphs=True)
            weights = largest_difference(eager[0], graph[0])
            losses = (eager[1] - graph[1]).abs().max().item()
            ok = weights <= TOLERANCE[precision] and eager[2] == graph[2]
            ok = ok and graph[3] == cuda  # the graph was captured exactly when on CUDA
            line = (f"max |weight diff| {weights:.2e} (tol {TOLERANCE[precision]:.0e}), "
                    f"max |loss diff| {losses:.2e}, optimizer steps {graph[2]}, "
                    f"captured {graph[3]}")  # fmt: skip
        except Exception as error:  # noqa: BLE001 - every failure is a FAIL line
            ok, line = False, f"{type(error).__name__}: {error}"
        print(f"{'PASS' if ok else 'FAIL'}  {name:38s} {line}  "
              f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
        if not ok:
            failures.append(name)
    # The negative control: a graph replayed on stale inputs must be caught.
    eager = run_lone(fp32, data, device, steps, graphs=False)
    stale = run_lone(fp32, data, device, steps, graphs=True, refill=False)
    caught = largest_difference(eager[0], stale[0]) > TOLERANCE["fp32"]
    print(f"{'PASS' if caught else 'FAIL'}  {'negative control: stale inputs':38s} "
          f"max |weight diff| {largest_difference(eager[0], stale[0]):.2e} must exceed the "
          f"tolerance")  # fmt: skip
    if not caught:
        failures.append("negative control")
    print(f"{len(cases) + 1 - len(failures)} of {len(cases) + 1} ok"
          + (f"; FAILED: {failures}" if failures else ""))  # fmt: skip
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
