"""Evaluation cost: the time a DCGAN grid spends on IS/FID against the time it spends training.

A small grid (``--arms`` arms x ``--seeds`` seeds of configs/dcgan-cifar10-adam0-rmsprop-vs-sgd.yaml
at its quick budget's networks, batch and data) is built in-process with gans/dcgan.py's own
functions. Each run trains ``--steps`` timed generator steps (after one untimed warm-up step),
then is scored once exactly as the trainer scores it (gans/dcgan.py ``evaluate``: generate
``eval_samples`` images, one pass through the feature network giving logits for IS and
penultimate features for FID, then the statistics). The scorer, and so the real statistics, is
built once for the grid and reused by every run; the bench also times building it cold (real
statistics computed) and warm (read from the on-disk cache, what each spawned run pays).

It prints the measured grid's training time, evaluation time and their ratio, then projects the
evaluation share of a whole run at the experiment's quick and full budgets from the measured
per-step and per-sample costs:

    train  = generator_steps x (seconds per step)
    eval   = evaluations x (eval_samples x (generation + features per sample) + statistics)
             + scorer setup per run (load the classifier, read cached real statistics)
    ratio  = eval / train                    (target, issue 6: <= 10% at the quick budget)

where ``evaluations`` counts the trainer's scores (every ``eval_every`` steps and at the end);
the real statistics are computed once per dataset and feature network (not per run), so they
appear once per grid.

Run::

    python bench/eval_cost.py                              # CPU: 2 arms x 2 seeds, 5 steps each
    python bench/eval_cost.py --device cuda --steps 50     # on a GPU
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gans import dcgan  # noqa: E402
from gans.classifier import cached_or_trained  # noqa: E402
from gans.data import DataOrder, load_image_data, to_uint8  # noqa: E402
from gans.scores import (  # noqa: E402
    Scorer,
    classifier_network,
    feature_statistics,
    frechet_distance,
    inception_score,
)
from suite.config import load_experiment  # noqa: E402

EXPERIMENT = "dcgan-cifar10-adam0-rmsprop-vs-sgd"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, function, *args):
    """(result, seconds) of one call, with the device synchronized on both sides."""
    synchronize(device)
    started = time.perf_counter()
    result = function(*args)
    synchronize(device)
    return result, time.perf_counter() - started


def build_network(config: dcgan.Config, device: str):
    """The experiment's feature network: the cached dataset classifier (scores: classifier)."""
    model, record = cached_or_trained(config.data, device, log=lambda message: None)
    return classifier_network(model, record)


def scorer_costs(config: dcgan.Config, data, device: str) -> tuple[Scorer, dict[str, float]]:
    """Build the grid's one Scorer cold (real statistics computed) and warm (read from a fresh
    on-disk cache, as every spawned run of the engine does after the first)."""
    costs = {}
    network, costs["load_classifier"] = timed(device, build_network, config, device)
    reference = data.train[: config.reference_samples]
    key = f"{data.name}-{reference.shape[-1]}px-{reference.shape[1]}ch"
    with tempfile.TemporaryDirectory() as cache:
        args = (network, reference, config.reference_split, key, Path(cache))
        scorer, costs["real_statistics_cold"] = timed(device, Scorer, *args)
        _, costs["real_statistics_cached"] = timed(device, Scorer, *args)
    costs["reference_images"] = len(reference)
    return scorer, costs


def train_one(config, specs, seed: int, data, device: str, steps: int):
    """One run's networks after ``steps`` timed train steps; returns (gan, seconds)."""
    torch.manual_seed(seed)
    gan = dcgan.build(config, data.train.shape[1], device)
    optimizers = dcgan.build_optimizers(gan, specs)
    order = DataOrder(len(data.train), config.batch_size, seed, device)
    dcgan.train_step(gan, optimizers, data, order, config)  # warm-up, untimed
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        dcgan.train_step(gan, optimizers, data, order, config)
    synchronize(device)
    return gan, time.perf_counter() - started


def evaluate_one(gan, scorer: Scorer, seed: int, samples: int, device: str) -> dict[str, float]:
    """One score of one run, as gans/dcgan.py's ``evaluate`` does it, split into its parts.

    The parts are the calls Scorer.score makes (one logits_and_features pass serves IS and FID),
    timed one by one; their sum is the evaluation's cost.
    """
    noise = gan.noise(samples, torch.Generator(device).manual_seed(10_000 + seed))
    images, generation = timed(device, dcgan.generate_images, gan, noise)
    uint8 = to_uint8(images)
    (logits, features), feature_pass = timed(device, scorer.network.logits_and_features, uint8)
    started = time.perf_counter()
    inception_score(logits, scorer.splits)
    mu, sigma = feature_statistics(features)
    frechet_distance(scorer.mu, scorer.sigma, mu, sigma)
    statistics = time.perf_counter() - started
    return {"generation": generation, "features": feature_pass, "statistics": statistics}


def project(budget: str, per_step: float, per_sample: float, fixed: float, costs) -> dict:
    """Projected seconds of one run's training and evaluation at an experiment budget."""
    task = load_experiment(EXPERIMENT, budget).task
    evaluations = math.ceil(task.generator_steps / task.eval_every)
    train = task.generator_steps * per_step
    setup = costs["load_classifier"] + costs["real_statistics_cached"]
    evaluation = evaluations * (task.eval_samples * per_sample + fixed) + setup
    reference = task.reference_samples * costs["features_per_sample"]
    return {
        "steps": task.generator_steps,
        "evaluations": evaluations,
        "eval_samples": task.eval_samples,
        "train": train,
        "eval": evaluation,
        "real_once": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arms", type=int, default=2, help="the experiment's first N arms")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device
    experiment = load_experiment(EXPERIMENT, "quick")
    config = experiment.task
    data = load_image_data(config.data, log=lambda message: None).to(device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    print(
        f"{EXPERIMENT} (quick budget networks): DCGAN {config.data.image_size}px width"
        f" {config.generator_width} batch {config.batch_size}; {args.arms} arms x {args.seeds}"
        f" seeds, {args.steps} timed steps and one score of {config.eval_samples} samples each;"
        f" {device} ({name or platform.machine()}, {torch.get_num_threads()} threads);"
        f" torch {torch.__version__}",
        flush=True,
    )
    scorer, costs = scorer_costs(config, data, device)
    print(
        f"scorer: {scorer.network.name}; classifier load {costs['load_classifier']:.2f} s; real"
        f" statistics of {costs['reference_images']} images computed once"
        f" {costs['real_statistics_cold']:.2f} s, read from cache {costs['real_statistics_cached']:.3f} s",
        flush=True,
    )
    train_seconds, parts = 0.0, {"generation": 0.0, "features": 0.0, "statistics": 0.0}
    runs = 0
    for arm, specs in list(experiment.arms.items())[: args.arms]:
        for seed in range(args.seeds):
            gan, seconds = train_one(config, specs, seed, data, device, args.steps)
            score = evaluate_one(gan, scorer, seed, config.eval_samples, device)
            train_seconds += seconds
            for part, value in score.items():
                parts[part] += value
            runs += 1
            print(f"  {arm} seed {seed}: train {seconds:.2f} s, eval {sum(score.values()):.2f} s")
    eval_seconds = sum(parts.values())
    print(
        f"measured grid ({runs} runs): train {train_seconds:.2f} s ({args.steps} steps/run),"
        f" eval {eval_seconds:.2f} s (one score/run: generation {parts['generation']:.2f} s,"
        f" features {parts['features']:.2f} s, statistics {parts['statistics']:.2f} s);"
        f" eval/train {eval_seconds / train_seconds:.1%}"
    )
    per_step = train_seconds / (runs * args.steps)
    samples = runs * config.eval_samples
    per_sample = (parts["generation"] + parts["features"]) / samples
    costs["features_per_sample"] = parts["features"] / samples
    fixed = parts["statistics"] / runs
    print(
        f"per step {per_step * 1e3:.1f} ms; per generated sample {per_sample * 1e3:.3f} ms"
        f" (generation {parts['generation'] / samples * 1e3:.3f}, features"
        f" {costs['features_per_sample'] * 1e3:.3f}); statistics {fixed * 1e3:.1f} ms per score"
    )
    for budget in ("quick", "full"):
        p = project(budget, per_step, per_sample, fixed, costs)
        share = p["eval"] / p["train"]
        grid_runs = len(experiment.arms) * len(load_experiment(EXPERIMENT, budget).seeds)
        grid_share = (grid_runs * p["eval"] + p["real_once"]) / (grid_runs * p["train"])
        verdict = "meets" if share <= 0.10 else "misses"
        print(
            f"projected {budget}: {p['steps']} steps, {p['evaluations']} scores of"
            f" {p['eval_samples']} samples per run: train {p['train']:.0f} s, eval"
            f" {p['eval']:.1f} s per run; eval/train {share:.1%} ({verdict} <= 10%); grid of"
            f" {grid_runs} runs with real statistics once ({p['real_once']:.1f} s):"
            f" {grid_share:.1%}"
        )


if __name__ == "__main__":
    main()
