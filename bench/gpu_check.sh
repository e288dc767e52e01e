#!/usr/bin/env bash
# Every GPU code path of the generative trainers, run once, in one call (issue 13):
#
#   bash bench/gpu_check.sh            # on a CUDA machine: under 8 minutes on an H100/H200
#   bash bench/gpu_check.sh --cpu      # dry check of the same paths on the CPU (~2 minutes)
#
# Paths: the DCGAN step in plain fp32 eager, with bf16 autocast, + channels_last, + torch.compile
# (the pytorch/pytorch#171622 workaround: compiled transposed convolutions stay contiguous), the
# pytorch/examples fp32 reference step (for the ratio), the grouped and vmap seed stacks under
# autocast (the vmap BatchNorm fix), the VAE lone step compiled and its vmap stack, the CIFAR
# ResNet classifier and a scorer (reference set, FID floor, calibration ladder) on the device,
# a tiny `suite run --stack-seeds` through the runner for the DCGAN (vmap) and the VAE, and the
# RL stacking bench (bench/rl_stacked.py) when it exists: its CPU line, and issue 15's two GPU
# lines with the stacked side on the device (SAC HalfCheetah-v5 2 arms x 10 seeds against 16 SB3
# processes; DQN MinAtar Breakout 4 x 20 seeds and its 4 x 20 x 1M projection), and the CUDA
# graphs of whole steps (suite/run/graphs.py): the DCGAN step with a graph (and compile + graph)
# against the reference, graph against eager parameters for the DCGAN, its stacks and the SAC and
# DQN stacks (bench/gan_graph_check.py, bench/rl_graph_check.py), SAC graphs on/off. Prints one table,
# path | status | time | figure, and exits non-zero if any path failed. Figures are short
# timings for a smoke check, not benchmarks: bench/dcgan_throughput.py and bench/dcgan_stacked.py
# measure speed.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [[ "${1:-}" == "--cpu" ]]; then DEVICE=cpu; fi
export GPU_CHECK_DEVICE="$DEVICE"
exec python - <<'PY'
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, os.getcwd())
from gans import dcgan, stacked  # noqa: E402
from gans.data import DataOrder, ImageData, ImageDataConfig  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402
from vae import stacked as vae_stacked  # noqa: E402
from vae import vae  # noqa: E402

DEVICE = os.environ["GPU_CHECK_DEVICE"]
CUDA = DEVICE == "cuda"
if CUDA and not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (use --cpu for the dry check)")
if not CUDA:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# Sizes: the real DCGAN on CUDA; a narrow one on the CPU, so the dry check stays short.
WIDTH, BATCH, STEPS, WARMUP = (64, 128, 50, 10) if CUDA else (16, 32, 3, 1)
SEEDS = 4 if CUDA else 2
ADAM = OptimizerSpec(optimizer="adam", lr=2e-4, kwargs={"betas": [0.5, 0.999]})
rows: list[tuple[str, str, float, str]] = []


def sync():
    if CUDA:
        torch.cuda.synchronize()


def check(name):
    """Run one path; record ok/FAIL, its seconds and its figure (the function's return)."""

    def wrap(fn):
        started = time.perf_counter()
        try:
            figure = fn()
            status = "skip" if str(figure).startswith("CUDA only") else "ok"
        except Exception as error:  # noqa: BLE001 - every failure is a row of the table
            traceback.print_exc()
            figure, status = " ".join(f"{type(error).__name__}: {error}".split())[:90], "FAIL"
        rows.append((name, status, time.perf_counter() - started, figure))
        print(f"[gpu_check] {name}: {status}", flush=True)
        return fn

    return wrap


def images(count=2048, classes=10):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.arange(count) % classes
    names = [f"c{i}" for i in range(classes)]
    return ImageData(x, y, x[:512].clone(), y[:512].clone(), names, "random", "random").to(DEVICE)


DATA = images()


def gan_config(**changes):
    base = dict(
        data=ImageDataConfig(), generator_width=WIDTH, discriminator_width=WIDTH, batch_size=BATCH,
        amp=False, channels_last=False, compile=False, cpu_speed_settings=True,
    )  # fmt: skip
    return dcgan.Config(**{**base, **changes})


def dcgan_steps(config, steps=STEPS, warmup=WARMUP):
    torch.manual_seed(0)
    gan = dcgan.build(config, 3, DEVICE)
    optimizers = dcgan.build_optimizers(gan, {"generator": ADAM, "discriminator": ADAM})
    order = DataOrder(len(DATA.train), config.batch_size, 0, DEVICE)
    for index in range(warmup + steps):
        if index == warmup:
            sync()
            started = time.perf_counter()
        loss_d, loss_g = dcgan.train_step(gan, optimizers, DATA, order, config)
    sync()
    rate = steps * config.batch_size / (time.perf_counter() - started)
    if not (torch.isfinite(loss_d) and torch.isfinite(loss_g)):
        raise FloatingPointError(f"losses {float(loss_d)}, {float(loss_g)}")
    return rate


reference_rate = None


@check("dcgan reference: pytorch/examples fp32 eager")
def _():
    global reference_rate
    sys.path.insert(0, "bench")
    from dcgan_throughput import time_reference

    reference_rate = time_reference(gan_config(), DATA, DEVICE, STEPS, WARMUP)
    return f"{reference_rate:.0f} img/s"


for label, changes in (
    ("dcgan fp32 eager", {}),
    ("dcgan bf16 autocast", {"amp": True}),
    ("dcgan autocast + channels_last", {"amp": True, "channels_last": True}),
    ("dcgan autocast + channels_last + compile", {"amp": True, "channels_last": True,
                                                  "compile": True}),  # fmt: skip
):

    @check(label)
    def _(changes=changes):
        warmup = WARMUP + (3 if changes.get("compile") else 0)  # compiling is not timed
        rate = dcgan_steps(gan_config(**changes), warmup=warmup)
        # On the CPU the dry check's 3 steps of a narrow net time noise, not speed: no ratio.
        ratio = f" ({rate / reference_rate:.2f}x reference)" if reference_rate and CUDA else ""
        return f"{rate:.0f} img/s{ratio}"


for label, changes, extra_warmup in (
    ("dcgan autocast + channels_last + CUDA graph", {"amp": True, "channels_last": True}, 4),
    ("dcgan autocast + channels_last + compile + CUDA graph",
     {"amp": True, "channels_last": True, "compile": True}, 7),
):  # fmt: skip

    @check(label)
    def _(changes=changes, extra_warmup=extra_warmup):
        if not CUDA:
            return "CUDA only: not run (bench/gan_graph_check.py checks the split step on the CPU)"
        from dcgan_throughput import time_suite

        rate = time_suite(gan_config(**changes), DATA, DEVICE, STEPS, WARMUP + extra_warmup,
                          graphs=True)  # fmt: skip
        return f"{rate:.0f} img/s ({rate / reference_rate:.2f}x reference; target >= 3x)"


@check("dcgan + stacks: CUDA graph vs eager (bench/gan_graph_check.py)")
def _():
    extra = ["--compile"] if CUDA else ["--steps", "5", "--threads", "2"]
    done = subprocess.run([sys.executable, "bench/gan_graph_check.py", "--device", DEVICE, *extra],
                          capture_output=True, text=True, timeout=400)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(" | ".join(done.stdout.strip().splitlines()[-3:]) or done.stderr[-200:])
    return done.stdout.strip().splitlines()[-1]


def stack_steps(method, amp=True):
    config = gan_config(amp=amp)
    stack, streams = stacked.build_stack(config, list(range(SEEDS)), 3, len(DATA.train), DEVICE,
                                         method)  # fmt: skip
    optimizers = stacked.build_stacked_optimizers(stack, {"generator": ADAM, "discriminator": ADAM})
    autocast = stacked._autocast(config, DEVICE)
    for index in range(WARMUP + STEPS):
        if index == WARMUP:
            sync()
            started = time.perf_counter()
        losses_d, losses_g = stacked.train_step(stack, optimizers, DATA.train, streams, config,
                                                autocast)  # fmt: skip
    sync()
    if not (torch.isfinite(losses_d).all() and torch.isfinite(losses_g).all()):
        raise FloatingPointError("non-finite stacked losses")
    rate = SEEDS * STEPS * BATCH / (time.perf_counter() - started)
    return f"{SEEDS} seeds: {rate:.0f} img/s"


@check("dcgan grouped stack, autocast")
def _():
    return stack_steps("grouped")


@check("dcgan vmap stack, autocast (BatchNorm fix)")
def _():
    return stack_steps("vmap")


def vae_config(**changes):
    base = dict(
        data=ImageDataConfig(image_size=32, channels=3), batch_size=BATCH, amp=True,
        channels_last=True, compile=False, cpu_speed_settings=True,
    )  # fmt: skip
    return vae.Config(**{**base, **changes})


@check("vae autocast + channels_last + compile")
def _():
    config = vae_config(compile=True)
    torch.manual_seed(0)
    model = vae.build(config, 3, DEVICE)
    optimizers = vae.build_optimizers(model, {"model": ADAM}, config)
    order = DataOrder(len(DATA.train), BATCH, 0, DEVICE)
    for index in range(WARMUP + 3 + STEPS):
        if index == WARMUP + 3:
            sync()
            started = time.perf_counter()
        loss = vae.train_step(model, optimizers, DATA.train[order.next()], config, 1.0)
    sync()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss {float(loss)}")
    return f"{STEPS * BATCH / (time.perf_counter() - started):.0f} img/s"


@check("vae vmap stack, autocast")
def _():
    config = vae_config(channels_last=False)
    stack, streams = vae_stacked.build_stack(config, list(range(SEEDS)), 3, len(DATA.train),
                                             DEVICE)  # fmt: skip
    optimizers = vae_stacked.build_stacked_optimizers(stack, {"model": ADAM}, config)
    speed = vae.speed_settings(config, DEVICE)
    for index in range(WARMUP + STEPS):
        if index == WARMUP:
            sync()
            started = time.perf_counter()
        losses = vae_stacked.train_step(stack, optimizers, DATA.train, streams, config, 1.0,
                                        speed.autocast)  # fmt: skip
    sync()
    if not torch.isfinite(losses).all():
        raise FloatingPointError("non-finite stacked VAE losses")
    rate = SEEDS * STEPS * BATCH / (time.perf_counter() - started)
    return f"{SEEDS} seeds: {rate:.0f} img/s"


@check("classifier (CIFAR ResNet) train steps + scorer")
def _():
    from gans.classifier import ClassifierSettings, train_classifier
    from gans.scores import Scorer, classifier_network, reference_set

    steps = 30 if CUDA else 3
    settings = ClassifierSettings(arch="resnet", epochs=1, batch_size=BATCH, max_steps=steps)
    started = time.perf_counter()
    model, record = train_classifier(DATA, settings, DEVICE, log=lambda message: None)
    sync()
    train_s = time.perf_counter() - started
    network = classifier_network(model, record, tiny=True)
    samples = 1000 if CUDA else 100
    scorer = Scorer(network, reference_set(DATA, "train", 2 * samples, samples), "train", "random")
    rho = scorer.calibration["spearman_min"]
    return (f"{steps} steps {train_s:.1f} s; ladder min Spearman {rho:.2f} "
            f"(random images, untrained net: wiring only)")  # fmt: skip


def suite_run(*arguments):
    with tempfile.TemporaryDirectory() as results:
        command = [sys.executable, "-m", "suite", "run", *arguments, "--budget", "smoke",
                   "--seeds", "2", "--workers", "1", "--device", DEVICE, "--results", results,
                   "--no-report"]  # fmt: skip
        env = {**os.environ, "SUITE_CACHE_DIR": os.path.join(results, "cache")}
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        if done.returncode != 0 or "runs: 2 done" not in done.stdout:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"exit {done.returncode}: " + " | ".join(tail))
        return done.stdout.strip().splitlines()[-1]


@check("runner: dcgan --stack-seeds vmap (smoke)")
def _():
    return suite_run("dcgan-cifar10-adam0-rmsprop-vs-sgd", "--arms", "adam0_rmsprop",
                     "--stack-seeds", "vmap", "--set", "task.amp=true",
                     "--set", "task.cpu_speed_settings=true")  # fmt: skip


@check("runner: vae --stack-seeds (smoke)")
def _():
    return suite_run("vae-adabelief-vs-adam", "--arms", "adam", "--stack-seeds",
                     "--set", "task.amp=true", "--set", "task.cpu_speed_settings=true")  # fmt: skip


def rl_bench(*arguments, timeout=300):
    """bench/rl_stacked.py's output; a RuntimeError (a FAIL row) when it exits non-zero."""
    command = [sys.executable, "bench/rl_stacked.py", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-200:]}")
    return done.stdout


def rl_line(pattern, text, what):
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {what} line in bench/rl_stacked.py's output")
    return found


if Path("bench/rl_stacked.py").exists():

    @check("rl: bench/rl_stacked.py dqn, 2 seeds")
    def _():
        out = rl_bench("--algo", "dqn", "--seeds", "2", "--steps", "200", "--workers", "2")
        ratio = [line for line in out.splitlines() if "ratio" in line]
        return ratio[0].strip() if ratio else out.strip().splitlines()[-1]

    # Issue 15's GPU lines. (a) 2 arms x 10 seeds of SAC HalfCheetah-v5 stacked on the device
    # (2 processes) against 16 SB3 CPU processes: 1000 learning steps each, about 1-1.5 min on
    # an H200 machine (estimate: SB3 ~55-80 steps/s a core). (b) DQN MinAtar Breakout, 4 arms x
    # 20 seeds stacked (4 processes), 5000 learning steps, the stacked side alone, and the
    # projection of 4 x 20 x 1M steps: about 1 min (estimate). On the CPU, tiny sizes.
    if CUDA:
        SAC_SIZES = ["--arms", "2", "--seeds", "10", "--steps", "1500", "--learning-starts", "500",
                     "--workers", "16", "--sb3-runs", "16", "--cuda-graphs", "on"]  # fmt: skip
        DQN_SIZES = ["--arms", "4", "--seeds", "20", "--steps", "6000", "--learning-starts", "1000",
                     "--cuda-graphs", "on"]  # fmt: skip
    else:
        SAC_SIZES = ["--arms", "2", "--seeds", "1", "--steps", "120", "--learning-starts", "40",
                     "--workers", "2", "--sb3-runs", "2", "--net-arch", "64,64"]  # fmt: skip
        DQN_SIZES = ["--arms", "2", "--seeds", "2", "--steps", "600", "--learning-starts", "200"]

    @check("rl: SAC HalfCheetah-v5 20 seeds stacked vs SB3")
    def _():
        out = rl_bench("--algo", "sac", "--env", "HalfCheetah-v5", "--device", DEVICE, *SAC_SIZES)
        figures = []
        for baseline in ("one", r"\d+"):
            found = rl_line(rf"vs ({baseline}) SB3 process.*?: (\S+) whole runs, (\S+) learning "
                            "phase", out, f"vs {baseline} SB3")  # fmt: skip
            figures.append(f"vs {found[1]} SB3: {found[3]} learning ({found[2]} whole)")
        target = re.search(r"target >= 50x.*: (met|not met)", out)
        return "; ".join(figures) + (f"; 50x {target[1]}" if target else "")

    @check("rl: DQN MinAtar Breakout 80 seeds stacked")
    def _():
        out = rl_bench("--algo", "dqn", "--env", "MinAtar/Breakout-v1", "--device", DEVICE,
                       "--sb3-runs", "0", *DQN_SIZES)  # fmt: skip
        found = rl_line(r"at (\d+) env-steps/s .*?measured here, (\d+ x \d+) seeds x (\d+) "
                        r"steps\): ([\d.]+) min on this machine, (NOT within|within) 30 min", out,
                        "projection")  # fmt: skip
        return (f"projected 4x20x1M: {found[4]} min, {found[5]} 30 min (at {found[1]} "
                f"env-steps/s, measured {found[2]} seeds x {found[3]} steps)")  # fmt: skip


    @check("rl: stacked update as CUDA graph vs eager (SAC, DQN adam, DQN rmsprop_deepmind)")
    def _():
        done = subprocess.run([sys.executable, "bench/rl_graph_check.py", "--device", DEVICE],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {(done.stdout + done.stderr)[-300:]}")
        return "; ".join(re.sub(r" on \S+, cuda_graphs .*?: max", ": max", line)
                         for line in done.stdout.splitlines())  # fmt: skip

    @check("rl: SAC HalfCheetah-v5 stacked, CUDA graphs on vs off")
    def _():
        sizes = ["--seeds", "10", "--steps", "1500", "--learning-starts", "500"] if CUDA else \
                ["--seeds", "2", "--steps", "120", "--learning-starts", "40", "--net-arch", "64,64"]
        out = rl_bench("--algo", "sac", "--env", "HalfCheetah-v5", "--device", DEVICE,
                       "--cuda-graphs", "both", "--sb3-runs", "0", *sizes)  # fmt: skip
        return rl_line(r"CUDA graphs on / off.*", out, "graphs on/off")[0].strip()


name_width = max(len(row[0]) for row in rows)
print()
print(f"device: {torch.cuda.get_device_name() if CUDA else 'cpu'}, torch {torch.__version__}")
print(f"{'path':<{name_width}} | status | time (s) | figure")
print(f"{'-' * name_width}-|--------|----------|-------")
for name, status, seconds, figure in rows:
    print(f"{name:<{name_width}} | {status:<6} | {seconds:8.1f} | {figure}")
failed = [row[0] for row in rows if row[1] == "FAIL"]
skipped = sum(row[1] == "skip" for row in rows)
print(f"{len(rows) - len(failed) - skipped} of {len(rows)} paths ok"
      + (f", {skipped} skipped (CUDA only)" if skipped else "")
      + (f"; FAILED: {failed}" if failed else ""))  # fmt: skip
sys.exit(1 if failed else 0)
PY
