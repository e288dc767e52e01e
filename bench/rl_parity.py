"""Is the seed-stacked trainer (agents/stacked.py, ``--stack-seeds``) the lone SB3 trainer it
stands for? The same experiment and arm run both ways by the suite's own commands, judged as a
parity claim by the suite's verdict machinery (``equivalence_margin_absolute``: TOST, the 90%
interval of stacked - SB3 inside +-margin).

The two sides are the commands a user runs, each into a results folder of its own:

    python -m suite run EXPERIMENT --arms ARM --seeds N --results LONE --no-report
    python -m suite run EXPERIMENT --arms ARM --seeds N --results STACKED --no-report --stack-seeds

``--run`` runs them (finished runs are skipped: a rerun with more seeds adds seeds), niced, the
two sides one after the other; without it the recorded runs are judged as they are. The margin
is fixed before the runs (the issue: at most 5% of the score range; CartPole's 0-500: 25).

Run: ``python bench/rl_parity.py --experiment quickstart --arm adam --seeds 16 --margin 25
--lone /tmp/parity-results/lone --stacked /tmp/parity-results/stack --run``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# The repository root, for `python bench/rl_parity.py` without an (editable) install.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIDES = {"sb3": [], "stacked": ["--stack-seeds"]}


def seeds(args) -> list[int]:
    return list(range(args.first_seed, args.first_seed + args.seeds))


def seed_words(args) -> list[str]:
    """``--seeds N`` for seeds 0..N-1; a fresh replication's seeds as the file's list."""
    if args.first_seed == 0:
        return ["--seeds", str(args.seeds)]
    return [f"--set=seeds={seeds(args)}".replace(" ", "")]


def command(args, side: str, root: str) -> list[str]:
    return [
        "nice", "-n", "5", sys.executable, "-m", "suite", "run", args.experiment,
        "--arms", args.arm, *seed_words(args), "--budget", args.budget,
        "--workers", str(args.workers), "--results", root, "--no-report",
        *[f"--set={setting}" for setting in args.set], *SIDES[side],
    ]  # fmt: skip


def load_results(root: str, args, side: str) -> list:
    """The side's finished records of this experiment, arm and budget at the chosen seeds,
    relabelled with the side as their arm (the claim compares arm 'stacked' with arm 'sb3')."""
    from suite.result import Result

    results = []
    for path in Path(root).rglob("result.json"):
        result = Result.from_dict(json.loads(path.read_text()))
        chosen = (result.experiment, result.arm, result.budget) == (
            args.experiment, args.arm, args.budget,
        )  # fmt: skip
        if chosen and result.seed in seeds(args):
            result.arm = side
            results.append(result)
    return sorted(results, key=lambda r: r.seed)


def judge(args, results: list) -> None:
    from suite.judge.claims import Claim, ClaimedEffect
    from suite.judge.evaluate import evaluate_claim

    print(
        "| metric | seeds a side | SB3 mean | stacked mean | stacked - SB3 (CI) | margin | verdict |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for metric in args.metrics.split(","):
        claim = Claim(
            id=f"parity-{args.experiment}",
            statement=f"stacked matches SB3 within {args.margin:g} on {metric}",
            metric=metric,
            direction="higher",
            arm="stacked",
            baseline="sb3",
            effect=ClaimedEffect(equivalence_margin_absolute=args.margin),
        )
        outcome = evaluate_claim(claim, results, args.budget)
        means = {a["name"]: a.get("mean") for a in outcome.arms}
        counts = {side: sum(r.arm == side for r in results) for side in SIDES}
        print(
            f"| {metric} | {counts['sb3']} / {counts['stacked']} | {means.get('sb3'):.4g} | "
            f"{means.get('stacked'):.4g} | {outcome.measured:+.3g} ({outcome.confidence:.0%}: "
            f"{outcome.ci_low:+.3g} to {outcome.ci_high:+.3g}, {outcome.method}) | "
            f"+-{args.margin:g} | {outcome.verdict}: {outcome.reason} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--arm", default="adam")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--seeds", type=int, default=16, help="N seeds a side")
    parser.add_argument(
        "--first-seed", type=int, default=0,
        help="seeds FIRST..FIRST+N-1 (default 0): a fresh replication at seeds no earlier look used",
    )  # fmt: skip
    parser.add_argument("--margin", type=float, default=25.0, help="absolute, fixed in advance")
    parser.add_argument("--metrics", default="eval/return_final,eval/return_auc")
    parser.add_argument("--lone", required=True, help="results folder of the SB3 side")
    parser.add_argument("--stacked", required=True, help="results folder of the stacked side")
    parser.add_argument("--set", action="append", default=[], help="passed to suite run")
    parser.add_argument("--workers", type=int, default=2, help="lone runs in parallel")
    parser.add_argument("--run", action="store_true", help="run the missing seeds first")
    args = parser.parse_args()
    roots = {"sb3": args.lone, "stacked": args.stacked}
    if args.run:
        for side, root in roots.items():
            started = time.perf_counter()
            subprocess.run(command(args, side, root), check=True)
            print(f"{side}: {time.perf_counter() - started:.0f} s wall", flush=True)
    for side, root in roots.items():
        print(f"{side}: {' '.join(command(args, side, root)[3:])}")
    results = [r for side, root in roots.items() for r in load_results(root, args, side)]
    for side in SIDES:
        runs = [r for r in results if r.arm == side]
        # A stacked seed records its stack's wall time; a lone run its own.
        walls = [r.wall_time_s for r in runs]
        wall = max(walls, default=0.0) if side == "stacked" else sum(walls)
        kind = "the stacks' longest" if side == "stacked" else "summed over the runs"
        seeds = sorted(r.seed for r in runs)
        print(f"{side}: {len(runs)} runs (seeds {seeds}), wall time {wall:.0f} s ({kind})")
    judge(args, results)


if __name__ == "__main__":
    main()
