"""Stacked seeds vs one after another: 4 DCGAN arms x 10 seeds, trained as 4 stacks of 10
(gans/stacked.py) and as 40 separate models one after another (gans/dcgan.py, eager).

Prints, for each side: training wall time, aggregate images/s (real images consumed per second,
all models together), model FLOP/s (FLOPs of one dcgan train_step, counted by
torch.utils.flop_counter, times the steps taken, over the wall time) and that rate as a fraction
of a dense matmul's rate measured in the same job (bf16 on CUDA, fp32 on the CPU). Then the
stacked/eager speedup. Only the training steps are timed (building models is not), after one
untimed warm-up step per side. The images are random uint8 tensors: timing does not depend on
their content, and the bench needs no dataset.

Targets (issue 6, on a GPU): >= 8x aggregate images/s (stretch 20x); model FLOP/s >= 10% of the
bf16 matmul rate.

Run::

    python bench/dcgan_stacked.py                               # GPU: DCGAN 32x32, batch 64
    python bench/dcgan_stacked.py --device cpu --steps 2 --threads 1   # CPU: tiny step counts
    python bench/dcgan_stacked.py --method vmap                 # the other way to stack

Each stacked side runs eagerly and, on CUDA, as one CUDA graph of the whole stacked step
(``task.cuda_graphs``: gans/stacked.py ``step_graph``); ``--no-cuda-graphs`` leaves those out.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gans import dcgan, stacked  # noqa: E402
from gans.data import DataOrder, ImageDataConfig  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402
from suite.run.device import speed_settings  # noqa: E402
from suite.run.graphs import WARMUP_STEPS  # noqa: E402


def spec(optimizer: str, lr: float, **kwargs) -> OptimizerSpec:
    return OptimizerSpec(optimizer=optimizer, lr=lr, kwargs=kwargs)


# Four arms, the same spec for both roles. Radford et al. 2016, §4: Adam, lr 2e-4, beta1 0.5.
ARMS: dict[str, OptimizerSpec] = {
    "adam_dcgan": spec("adam", 2.0e-4, betas=[0.5, 0.999]),
    "adam_beta1_0": spec("adam", 2.0e-4, betas=[0.0, 0.99]),
    "rmsprop": spec("rmsprop", 2.0e-4),
    "sgd_momentum": spec("sgd", 1.0e-2, momentum=0.9),
}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, seconds: float = 2.0) -> tuple[float, str]:
    """FLOP/s of a large square matmul: bf16 on CUDA, fp32 on the CPU."""
    dtype, size = (torch.bfloat16, 8192) if device.startswith("cuda") else (torch.float32, 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    synchronize(device)
    repeats, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        repeats += 1
        if device.startswith("cuda") and repeats % 10:
            continue
        synchronize(device)
    synchronize(device)
    elapsed = time.perf_counter() - started
    return 2 * size**3 * repeats / elapsed, f"{str(dtype).removeprefix('torch.')} {size}^3"


def flops_per_step(config: dcgan.Config, images: torch.Tensor, device: str) -> int:
    """FLOPs of one dcgan.train_step of one model (forward and backward, D and G)."""
    from torch.utils.flop_counter import FlopCounterMode

    gan, optimizers, order = build_one(config, ARMS["adam_dcgan"], 0, images, device)
    counter = FlopCounterMode(display=False)
    with counter:
        dcgan.train_step(gan, optimizers, SimpleNamespace(train=images), order, config)
    return counter.get_total_flops()


def build_one(config, arm_spec, seed, images, device):
    torch.manual_seed(seed)
    gan = dcgan.build(config, images.shape[1], device)
    optimizers = dcgan.build_optimizers(gan, {"generator": arm_spec, "discriminator": arm_spec})
    return gan, optimizers, DataOrder(len(images), config.batch_size, seed, device)


def train_eagerly(config, seeds: list[int], images, device: str, steps: int) -> float:
    """Every arm's every seed, one model after another. Returns the seconds spent in steps."""
    data, spent = SimpleNamespace(train=images), 0.0
    for arm_spec in ARMS.values():
        for seed in seeds:
            gan, optimizers, order = build_one(config, arm_spec, seed, images, device)
            dcgan.train_step(gan, optimizers, data, order, config)  # warm-up, untimed
            synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                dcgan.train_step(gan, optimizers, data, order, config)
            synchronize(device)
            spent += time.perf_counter() - started
    return spent


def train_stacked(
    config, seeds: list[int], images, device: str, steps: int, method, graphs: bool = False
) -> float:
    """Every arm as one stack of its seeds. Returns the seconds spent in steps. ``graphs``: the
    stacked step as one CUDA graph (stacked.step_graph), captured in the untimed warm-up."""
    spent = 0.0
    speed = speed_settings(config, device)  # the lone runs' autocast
    autocast = speed.autocast if speed.amp else None

    for arm_spec in ARMS.values():
        stack, streams = stacked.build_stack(
            config, seeds, images.shape[1], len(images), device, method
        )
        specs = {"generator": arm_spec, "discriminator": arm_spec}
        optimizers = stacked.build_stacked_optimizers(stack, specs, capturable=graphs)
        graph = None
        if graphs:
            graph = stacked.step_graph(stack, optimizers, images, config, device, enabled=True)
        for _ in range(WARMUP_STEPS + 1 if graphs else 1):  # warm-up (and capture), untimed
            stacked.train_step(stack, optimizers, images, streams, config, autocast, graph)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            stacked.train_step(stack, optimizers, images, streams, config, autocast, graph)
        synchronize(device)
        spent += time.perf_counter() - started
        if graph is not None and not graph.captured.captured:
            raise RuntimeError("the stacked step graph was not captured")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, choices=(28, 32, 64))
    parser.add_argument("--width", type=int, default=64, help="generator/discriminator width")
    parser.add_argument("--method", default="both", choices=("grouped", "vmap", "both"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also each stack as one CUDA graph of its step (CUDA only; default on)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    steps = args.steps or (50 if device.startswith("cuda") else 2)
    config = dcgan.Config(
        data=ImageDataConfig(image_size=args.image_size, channels=3),
        generator_width=args.width,
        discriminator_width=args.width,
        batch_size=args.batch_size,
    )
    seeds = list(range(args.seeds))
    images = torch.randint(0, 256, (4096, 3, args.image_size, args.image_size), dtype=torch.uint8)
    images = images.to(device)
    models = len(ARMS) * len(seeds)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    print(
        f"DCGAN {args.image_size}px width {args.width} batch {args.batch_size}: {len(ARMS)} arms x"
        f" {len(seeds)} seeds, {steps} timed steps each; {device} ({name or platform.machine()},"
        f" {torch.get_num_threads()} threads); torch {torch.__version__}",
        flush=True,
    )
    peak, peak_what = matmul_rate(device)
    flops = flops_per_step(config, images, device)
    print(f"matmul rate ({peak_what}): {peak / 1e9:.1f} GFLOP/s; model: {flops / 1e9:.3f} GFLOP"
          " per train_step", flush=True)  # fmt: skip
    work_images, work_flops = models * steps * args.batch_size, models * steps * flops
    sides = {"eager (one after another)": train_eagerly(config, seeds, images, device, steps)}
    methods = ("grouped", "vmap") if args.method == "both" else (args.method,)
    cuda = device.startswith("cuda")
    for method in methods:
        sides[f"stacked ({method})"] = train_stacked(config, seeds, images, device, steps, method)
        if args.cuda_graphs and cuda:
            sides[f"stacked ({method}, CUDA graph)"] = train_stacked(
                config, seeds, images, device, steps, method, graphs=True
            )
    eager = sides["eager (one after another)"]
    for side, seconds in sides.items():
        print(
            f"{side:36s} {seconds:8.2f} s  {work_images / seconds:9.1f} images/s "
            f" {work_flops / seconds / 1e9:8.2f} GFLOP/s  {100 * work_flops / seconds / peak:5.1f}%"
            f" of matmul  speedup {eager / seconds:5.2f}x"
        )
    if args.cuda_graphs and not cuda:
        print("stacked (..., CUDA graph): CUDA only")


if __name__ == "__main__":
    main()
