"""DCGAN training throughput: the suite's step against a plain eager fp32 loop, same process.

A pytorch/examples-style reference step (fp32, contiguous, eager, one Adam per network, batches
already on the device) and the suite's step (gans/dcgan.py ``train_step``: RoleOptimizers,
on-device uint8 data, and on CUDA bf16 autocast + channels_last) train the same DCGAN 32x32 on
random images; then the suite's step as one CUDA graph of the whole step (``task.cuda_graphs``,
suite/run/graphs.py), and with ``--compile`` torch.compile'd networks, eager and inside the
graph. Prints images/s of each and its ratio to the reference (>1: faster), all measured in one
run. Targets (issue 13, one GPU): the speed settings >= 1x the reference, the fastest setting
>= 3x. A speed target lives here, never in the tests.

    python bench/dcgan_throughput.py                      # CPU, short (graph rows: CUDA only)
    python bench/dcgan_throughput.py --device cuda --steps 300 --compile
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a clone

from gans.data import DataOrder, ImageData, ImageDataConfig  # noqa: E402
from gans.dcgan import (  # noqa: E402
    Config,
    Discriminator,
    Generator,
    StepGraph,
    build,
    build_optimizers,
    init_weights,
    speed_settings,
)
from gans.dcgan import train_step as suite_step  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402
from suite.run.graphs import WARMUP_STEPS  # noqa: E402

ADAM = OptimizerSpec(optimizer="adam", lr=2e-4, kwargs={"betas": [0.5, 0.999]})


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_data(count: int, device: str) -> ImageData:
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.zeros(count, dtype=torch.long, device=device)
    return ImageData(images, labels, images[:10], labels[:10], ["x"], "random", "random")


def time_suite(
    config: Config, data: ImageData, device: str, steps: int, warmup: int, graphs: bool = False
) -> float:
    """images/s of the suite's step; ``graphs``: through a StepGraph captured after its eager
    warm-up steps (within ``warmup``: capture is not timed), as dcgan.train runs it on CUDA."""
    gan = build(config, 3, device)
    specs = {"generator": ADAM, "discriminator": ADAM}
    optimizers = build_optimizers(gan, specs, capturable=graphs)
    order = DataOrder(len(data.train), config.batch_size, 0, device)
    graph = StepGraph.lone(gan, optimizers, data, config, enabled=True) if graphs else None
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            started = time.perf_counter()
        suite_step(gan, optimizers, data, order, config, graph)
    synchronize(device)
    if graph is not None and not graph.captured.captured:
        raise RuntimeError("the step graph was not captured")
    return steps * config.batch_size / (time.perf_counter() - started)


def settings_label(config: Config, device: str) -> str:
    speed = speed_settings(config, device)
    on = [("bf16 autocast", speed.amp), ("channels_last", speed.channels_last),
          ("torch.compile", speed.compile)]  # fmt: skip
    return ", ".join(name for name, flag in on if flag) or "fp32 eager"


def time_reference(config: Config, data: ImageData, device: str, steps: int, warmup: int) -> float:
    """pytorch/examples dcgan/main.py's step: fp32, eager, D on real then fake.detach(), G with
    the label flip reusing the same fake batch."""
    generator = Generator(config.latent_dim, config.generator_width, 3, 32).to(device)
    discriminator = Discriminator(config.discriminator_width, 3, 32).to(device)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_images = data.train.float() / 127.5 - 1
    batch = config.batch_size
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            started = time.perf_counter()
        start = (index * batch) % (len(real_images) - batch)
        real = real_images[start : start + batch]
        ones = torch.ones(batch, device=device)
        zeros = torch.zeros(batch, device=device)
        optimizer_d.zero_grad()
        fake = generator(torch.randn(batch, config.latent_dim, 1, 1, device=device))
        loss_d = F.binary_cross_entropy_with_logits(discriminator(real), ones)
        loss_d = loss_d + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros)
        loss_d.backward()
        optimizer_d.step()
        optimizer_g.zero_grad()
        F.binary_cross_entropy_with_logits(discriminator(fake), ones).backward()
        optimizer_g.step()
    synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 10, GPU 300)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (CPU 2, GPU 30)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--width", type=int, default=64, help="generator and discriminator width (ngf = ndf)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="rows with torch.compile'd nets (eager, graph)"
    )
    parser.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rows with the whole step as one CUDA graph (CUDA only; default on)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--cpu-speed-settings",
        action="store_true",
        help="on the CPU too: bf16 autocast, channels_last (and --compile), as on CUDA",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    steps = args.steps or (300 if cuda else 10)
    warmup = args.warmup if args.warmup is not None else (30 if cuda else 2)
    torch.manual_seed(0)
    config = Config(
        data=ImageDataConfig(), batch_size=args.batch_size, generator_width=args.width,
        discriminator_width=args.width, cpu_speed_settings=args.cpu_speed_settings,
    )  # fmt: skip
    data = random_data(4096, args.device)
    print(
        f"device {args.device}, width {args.width}, batch {args.batch_size}, {steps} timed "
        f"steps, threads {torch.get_num_threads()}, torch {torch.__version__}",
        flush=True,
    )
    reference = time_reference(config, data, args.device, steps, warmup)
    print(f"{'reference (pytorch/examples, fp32 eager)':52s} {reference:9.1f} images/s   1.00x")
    rows = [(config, False)]
    if args.cuda_graphs:
        rows.append((config, True))
    if args.compile:
        compiled = dataclasses.replace(config, compile=True)
        rows += [(compiled, False)] + ([(compiled, True)] if args.cuda_graphs else [])
    for row_config, graphs in rows:
        label = f"suite ({settings_label(row_config, args.device)}{', CUDA graph' * graphs})"
        if graphs and not cuda:
            print(f"{label:52s} CUDA only")
            continue
        # Compiling and capturing happen in untimed steps.
        row_warmup = warmup + 3 * row_config.compile + (WARMUP_STEPS + 1) * graphs
        rate = time_suite(row_config, data, args.device, steps, row_warmup, graphs)
        print(f"{label:52s} {rate:9.1f} images/s {rate / reference:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
