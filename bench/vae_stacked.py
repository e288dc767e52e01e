"""Stacked seeds vs one after another for the VAE: the arms of configs/vae-adabelief-vs-adam.yaml
x S seeds, trained as one stack per arm (vae/stacked.py) and as separate models one after
another (vae/vae.py, eager).

Prints, for each side: training wall time, aggregate images/s (training images consumed per
second, all models together), model FLOP/s (FLOPs of one vae train_step counted by
torch.utils.flop_counter, times the steps taken, over the wall time) and that rate as a fraction
of a dense matmul's rate measured in the same job (bf16 on CUDA, fp32 on the CPU), then the
stacked/eager speedup. Only training steps are timed, after one untimed warm-up step per side.
Images are random uint8 tensors (timing does not depend on their content).

Targets (issue 6, on a GPU, as for the DCGAN): >= 8x aggregate images/s; >= 10% of bf16 matmul.

Run::

    python bench/vae_stacked.py                                  # GPU: the experiment's VAE
    python bench/vae_stacked.py --device cpu --steps 5 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcgan_stacked import matmul_rate, synchronize  # noqa: E402 - bench/ is the script's folder

from gans.data import DataOrder  # noqa: E402
from suite.config import load_experiment  # noqa: E402
from vae import stacked  # noqa: E402
from vae import vae as single  # noqa: E402

EXPERIMENT = "vae-adabelief-vs-adam"
KL_WEIGHT = 1.0


def flops_per_step(config, specs, images, device: str) -> int:
    torch.manual_seed(0)
    model = single.build(config, images.shape[1], device)
    optimizers = single.build_optimizers(model, specs, config)
    batch = images[: config.batch_size]
    with FlopCounterMode(display=False) as counter:
        single.train_step(model, optimizers, batch, config, KL_WEIGHT)
    return counter.get_total_flops()


def train_eagerly(config, arms, seeds, images, device: str, steps: int) -> float:
    """Every arm's every seed, one model after another. Returns the seconds spent in steps."""
    spent = 0.0
    for specs in arms.values():
        for seed in seeds:
            torch.manual_seed(seed)
            model = single.build(config, images.shape[1], device)
            optimizers = single.build_optimizers(model, specs, config)
            order = DataOrder(len(images), config.batch_size, seed, device)
            single.train_step(model, optimizers, images[order.next()], config, KL_WEIGHT)
            synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                single.train_step(model, optimizers, images[order.next()], config, KL_WEIGHT)
            synchronize(device)
            spent += time.perf_counter() - started
    return spent


def train_stacked(config, arms, seeds, images, device: str, steps: int) -> float:
    """Every arm as one stack of its seeds. Returns the seconds spent in steps."""
    spent = 0.0
    speed = single.speed_settings(config, device)  # the lone runs' autocast
    autocast = speed.autocast if speed.amp else None

    for specs in arms.values():
        stack, streams = stacked.build_stack(config, seeds, images.shape[1], len(images), device)
        optimizers = stacked.build_stacked_optimizers(stack, specs, config)
        stacked.train_step(stack, optimizers, images, streams, config, KL_WEIGHT, autocast)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            stacked.train_step(stack, optimizers, images, streams, config, KL_WEIGHT, autocast)
        synchronize(device)
        spent += time.perf_counter() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    steps = args.steps or (50 if device.startswith("cuda") else 5)
    experiment = load_experiment(EXPERIMENT, "quick")
    config, arms = experiment.task, experiment.arms
    seeds = list(range(args.seeds))
    size, channels = config.data.image_size, config.data.channels
    images = torch.randint(0, 256, (8000, channels, size, size), dtype=torch.uint8).to(device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    print(
        f"VAE ({config.architecture}, {size}px, width {config.width}, hidden {config.hidden},"
        f" latent {config.latent_dim}, batch {config.batch_size}): {len(arms)} arms x"
        f" {len(seeds)} seeds, {steps} timed steps each; {device} ({name or platform.machine()},"
        f" {torch.get_num_threads()} threads); torch {torch.__version__}",
        flush=True,
    )
    peak, peak_what = matmul_rate(device)
    flops = flops_per_step(config, next(iter(arms.values())), images, device)
    print(f"matmul rate ({peak_what}): {peak / 1e9:.1f} GFLOP/s; model: {flops / 1e9:.4f} GFLOP"
          " per train_step", flush=True)  # fmt: skip
    models = len(arms) * len(seeds)
    work_images, work_flops = models * steps * config.batch_size, models * steps * flops
    sides = {
        "eager (one after another)": train_eagerly(config, arms, seeds, images, device, steps),
        "stacked (vmap)": train_stacked(config, arms, seeds, images, device, steps),
    }
    eager = sides["eager (one after another)"]
    for side, seconds in sides.items():
        print(
            f"{side:28s} {seconds:8.2f} s  {work_images / seconds:9.1f} images/s "
            f" {work_flops / seconds / 1e9:8.2f} GFLOP/s  {100 * work_flops / seconds / peak:5.1f}%"
            f" of matmul  speedup {eager / seconds:5.2f}x"
        )


if __name__ == "__main__":
    main()
