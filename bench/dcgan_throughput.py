"""DCGAN training throughput: the suite's step against a plain eager fp32 loop, same process.

The suite's step (gans/dcgan.py ``train_step``: RoleOptimizers, on-device uint8 data, and on
CUDA bf16 autocast + channels_last, optionally torch.compile) and a pytorch/examples-style
reference step (fp32, contiguous, one Adam per network, batches already on the device) train the
same DCGAN 32x32 on random images. Prints images/s of each and their ratio (>1: the suite is
faster). A speed target lives here, never in the tests.

    python bench/dcgan_throughput.py                      # CPU, short
    python bench/dcgan_throughput.py --device cuda --steps 300 --compile
"""

from __future__ import annotations

import argparse
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
    build,
    build_optimizers,
    init_weights,
    speed_settings,
)
from gans.dcgan import train_step as suite_step  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402

ADAM = OptimizerSpec(optimizer="adam", lr=2e-4, kwargs={"betas": [0.5, 0.999]})


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_data(count: int, device: str) -> ImageData:
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.zeros(count, dtype=torch.long, device=device)
    return ImageData(images, labels, images[:10], labels[:10], ["x"], "random", "random")


def time_suite(config: Config, data: ImageData, device: str, steps: int, warmup: int) -> float:
    gan = build(config, 3, device)
    optimizers = build_optimizers(gan, {"generator": ADAM, "discriminator": ADAM})
    order = DataOrder(len(data.train), config.batch_size, 0, device)
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            started = time.perf_counter()
        suite_step(gan, optimizers, data, order, config)
    synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - started)


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
    parser.add_argument("--compile", action="store_true", help="torch.compile the suite's nets")
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
        data=ImageDataConfig(),
        batch_size=args.batch_size,
        compile=args.compile,
        cpu_speed_settings=args.cpu_speed_settings,
    )
    data = random_data(4096, args.device)
    suite = time_suite(config, data, args.device, steps, warmup)
    reference = time_reference(config, data, args.device, steps, warmup)
    speed = speed_settings(config, args.device)
    settings = (
        ", ".join(
            name
            for name, on in (
                ("bf16 autocast", speed.amp),
                ("channels_last", speed.channels_last),
                ("torch.compile", speed.compile),
            )
            if on
        )
        or "fp32 eager"
    )
    print(f"device {args.device}, batch {args.batch_size}, {steps} timed steps, "
          f"threads {torch.get_num_threads()}")  # fmt: skip
    print(f"suite step ({settings}): {suite:8.1f} images/s")
    print(f"reference (eager fp32):     {reference:8.1f} images/s")
    print(f"ratio suite / reference:    {suite / reference:8.2f}")


if __name__ == "__main__":
    main()
