"""Verdict calibration: how often the judge decides when it should not, and covers the truth.

Thousands of simulated experiments go through the real claim path
(``suite.judge.claims.validate_claims`` then ``suite.judge.evaluate.evaluate_claim``, with
their defaults), their runs drawn by the synthetic trainer's own sampling function
(``suite.synthetic.draw``, the one ``python -m suite run`` uses, here without processes). A
cell is a distribution of one run's metric x seeds per arm n x design x failures:

* distributions (mean 10, standard deviation 2 in arm B unless noted): ``normal``;
  ``lognormal`` (sd of the log 0.5: mean 10, sd 5.3, right-skewed); ``t3`` (Student t, 3 degrees
  of freedom, scale 2 / sqrt(3): heavy tails, sd 2);
* n = 3, 5, 10, 20 seeds per arm;
* ``paired``: both arms run the same seeds (the suite's design); ``unpaired``: different seeds;
* failures: ``none``, or ``failed`` (each run crashes with probability 0.2, ``p_failed``: left
  out, so arms end up with different seeds and sizes), or ``diverged`` (``p_diverged`` 0.2:
  the judge's diverged-run policy applies; its truth is defined only under no effect).

Each cell simulates two data sets per experiment: **no effect** (A and B identical) and **the
claimed effect** (A shifted by one standard deviation of B: +2 for normal and t3; x1.53 for the
lognormal, the same +1 sd). Each data set is judged by four claims of A over B ("higher is
better"): ``direction`` (A better, no size), ``absolute`` (A - B = the true shift),
``relative`` (A / B - 1 = the true ratio - 1) and ``equivalence`` (parity within a relative
margin equal to that same true ratio - 1). Columns:

* ``null dec``: under no effect, the share of decided verdicts (``verdicts.DECIDED``: anything
  but inconclusive). For equivalence, the share "reproduced" when the true effect sits exactly
  at the margin (TOST's error; not defined with diverged runs, whose imputed values move the
  effect off the margin). Target <= 5%.
* ``cover``: the share of reported intervals that contain the true effect (A - B for direction
  and absolute, A / B - 1 for relative and equivalence), over both data sets (for ``diverged``,
  the no-effect set only); target >= 93% for 95% intervals. ``conf`` is the level the judge
  reports it used (TOST's parity interval is 1 - 2 alpha = 90%). ``no CI``: the share of
  experiments without an interval (e.g. a relative effect on a t3 baseline with a negative run);
  coverage is over the others.
* ``power``: at the claimed effect, the share "reproduced" (equivalence: under no effect);
  ``right side``: the share of decided verdicts on the claimed side of 0 (reproduced,
  direction-only, weaker, stronger).

Run::

    python bench/verdict_calibration.py                 # --sims 250: 1.5-3 min on one core
    python bench/verdict_calibration.py --sims 2000     # thousands per cell
    python bench/verdict_calibration.py --n 3 5 --dists normal --failures none --sims 200
"""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from suite.judge import verdicts  # noqa: E402
from suite.judge.claims import validate_claims  # noqa: E402
from suite.judge.evaluate import evaluate_claim  # noqa: E402
from suite.result import Result  # noqa: E402
from suite.synthetic import Config, MetricSpec, draw, expected_value  # noqa: E402

METRIC = "eval/score"
CLAIM_KINDS = ("direction", "absolute", "relative", "equivalence")
SIGNED_DECIDED = ("reproduced", "direction-only", "weaker", "stronger")
DECIDED = getattr(verdicts, "DECIDED", (*SIGNED_DECIDED, "contradicted"))

# Arm B's distribution in each cell: mean 10, sd 2 (the lognormal: mean 10, sd of the log 0.5).
DISTRIBUTIONS: dict[str, MetricSpec] = {
    "normal": MetricSpec("normal", mean=10.0, sd=2.0),
    "lognormal": MetricSpec("lognormal", mean=math.log(10.0) - 0.5**2 / 2, sd=0.5),
    "t3": MetricSpec("student_t", df=3.0, loc=10.0, scale=2.0 / math.sqrt(3.0)),
}
FAILURES = {"none": {}, "failed": {"p_failed": 0.2}, "diverged": {"p_diverged": 0.2}}


def standard_deviation(spec: MetricSpec) -> float:
    if spec.distribution == "normal":
        return spec.sd
    if spec.distribution == "lognormal":
        return expected_value(spec) * math.sqrt(math.exp(spec.sd**2) - 1.0)
    return spec.scale * math.sqrt(spec.df / (spec.df - 2.0))


def shifted(spec: MetricSpec, delta: float) -> MetricSpec:
    """``spec`` with its mean raised by ``delta`` (the lognormal: scaled, so it stays positive)."""
    if spec.distribution == "normal":
        return replace(spec, mean=spec.mean + delta)
    if spec.distribution == "lognormal":
        return replace(spec, mean=spec.mean + math.log1p(delta / expected_value(spec)))
    return replace(spec, loc=spec.loc + delta)


def claims_for(absolute: float, relative: float) -> dict:
    """The four claims of arm a over arm b, built and checked as an experiment file's are."""
    effects = {
        "direction": None,
        "absolute": {"absolute": absolute},
        "relative": {"relative": relative},
        "equivalence": {"equivalence_margin": relative},
    }
    raw = [
        {
            "id": kind,
            "statement": f"simulated {kind} claim",
            "metric": METRIC,
            "direction": "higher",
            "arm": "a",
            "baseline": "b",
            **({"effect": effect} if effect else {}),
        }
        for kind, effect in effects.items()
    ]
    return dict(zip(CLAIM_KINDS, validate_claims(raw, ["a", "b"], [METRIC]), strict=True))


def results_for(configs: dict[str, Config], seeds: dict[str, list[int]]) -> list[Result]:
    """One simulated experiment: every run drawn as the synthetic trainer draws it."""
    out = []
    for arm, config in configs.items():
        for seed in seeds[arm]:
            run = draw(config, arm, seed)
            out.append(
                Result(
                    run_id=f"{arm}-{seed}",
                    experiment="calibration",
                    arm=arm,
                    seed=seed,
                    budget="quick",
                    trainer="synthetic",
                    task={},
                    optimizers={},
                    status=run.status,
                    metrics=run.metrics,
                    diverged_at_step=run.diverged_at_step,
                    error=run.why or None,
                )
            )
    return out


@dataclass
class Tally:
    null_decided: int = 0
    null_total: int = 0
    covered: int = 0
    with_ci: int = 0
    without_ci: int = 0
    reproduced: int = 0
    right_side: int = 0
    power_total: int = 0
    confidence: float = float("nan")

    def cover(self, outcome, truth: float | None) -> None:
        if truth is None:
            return
        low, high = outcome.ci_low, outcome.ci_high
        if not (math.isfinite(low) and math.isfinite(high)):
            self.without_ci += 1
            return
        self.with_ci += 1
        self.covered += low <= truth <= high
        self.confidence = getattr(outcome, "confidence", 0.95)


def cell_number(dist: str, n: int, design: str, failure: str) -> int:
    """A number of the cell itself, so a cell draws the same runs whatever else is selected."""
    key = f"{dist}/{design}/{failure}/{n}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:3], "little")


def simulate_cell(dist: str, n: int, design: str, failure: str, sims: int, effect_sd: float):
    base = replace(DISTRIBUTIONS[dist], **FAILURES[failure])
    delta = effect_sd * standard_deviation(base)
    alt = shifted(base, delta)
    truth_absolute = expected_value(alt) - expected_value(base)
    truth_relative = expected_value(alt) / expected_value(base) - 1.0
    claims = claims_for(truth_absolute, truth_relative)
    null_cfg = {"a": Config({METRIC: base}), "b": Config({METRIC: base})}
    alt_cfg = {"a": Config({METRIC: alt}), "b": Config({METRIC: base})}
    tallies = {kind: Tally() for kind in CLAIM_KINDS}
    labels: Counter = Counter()
    methods: Counter = Counter()
    truth_known = failure != "diverged"
    for s in range(sims):
        # Seeds never shared between experiments, nor (but by a 2**-24 chance) between cells.
        first = (cell_number(dist, n, design, failure) * 1_000_003 + s) * 64
        seeds = {"a": list(range(first, first + n))}
        seeds["b"] = seeds["a"] if design == "paired" else [x + 32 for x in seeds["a"]]
        null = results_for(null_cfg, seeds)
        at_effect = results_for(alt_cfg, seeds)
        for kind, claim in claims.items():
            t = tallies[kind]
            relative = kind in ("relative", "equivalence")
            o_null = evaluate_claim(claim, null, "quick")
            o_alt = evaluate_claim(claim, at_effect, "quick")
            labels.update([o_null.verdict, o_alt.verdict])
            methods[getattr(o_null, "method", "")] += 1
            t.cover(o_null, 0.0)
            t.cover(
                o_alt, (truth_relative if relative else truth_absolute) if truth_known else None
            )
            t.power_total += 1
            if kind == "equivalence":
                if truth_known:  # with diverged runs imputed, the truth is not at the margin
                    t.null_total += 1
                    t.null_decided += o_alt.verdict == "reproduced"  # true effect at the margin
                t.reproduced += o_null.verdict == "reproduced"  # true effect 0
                t.right_side += o_null.verdict == "reproduced"
            else:
                t.null_total += 1
                t.null_decided += o_null.verdict in DECIDED
                t.reproduced += o_alt.verdict == "reproduced"
                t.right_side += o_alt.verdict in SIGNED_DECIDED
    return tallies, labels, methods


def percent(k: int, total: int) -> str:
    return f"{100 * k / total:.1f}" if total else "n/a"


def judge_version() -> str:
    """Which judge was measured: a hash of suite/judge/*.py and the git commit."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "suite" / "judge").glob("*.py")):
        digest.update(path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "suite/judge"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        head, dirty = "?", ""
    return f"suite/judge sha256 {digest.hexdigest()[:12]}, git {head}" + (
        " + uncommitted changes in suite/judge" if dirty else ""
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=250, help="experiments per cell and data set")
    parser.add_argument("--n", type=int, nargs="+", default=[3, 5, 10, 20], help="seeds per arm")
    parser.add_argument(
        "--dists", nargs="+", default=list(DISTRIBUTIONS), choices=list(DISTRIBUTIONS)
    )
    parser.add_argument(
        "--designs", nargs="+", default=["paired", "unpaired"], choices=["paired", "unpaired"]
    )
    parser.add_argument("--failures", nargs="+", default=["none", "failed"], choices=list(FAILURES))
    parser.add_argument("--effect-sd", type=float, default=1.0, help="claimed effect, in sd of B")
    args = parser.parse_args(argv)
    if args.sims < 1 or min(args.n) < 1:
        parser.error("--sims and --n must be >= 1")

    started = time.perf_counter()
    print(f"judge: {judge_version()}")
    print(
        f"setting: {args.sims} simulated experiments per cell and data set (no effect; effect "
        f"{args.effect_sd:g} sd), each judged by {len(CLAIM_KINDS)} claims; n={args.n}, "
        f"dists={args.dists}, designs={args.designs}, failures={args.failures}"
    )
    header = (
        f"{'dist':<10}{'design':<9}{'fail':<9}{'n':>3}  {'claim':<12}{'null dec':>9}{'cover':>7}"
        f"{'conf':>6}{'no CI':>7}{'power':>7}{'right side':>11}"
    )
    print(header)
    worst = {"null": (0.0, ""), "cover": (100.0, "")}
    labels_all: Counter = Counter()
    methods_all: Counter = Counter()
    cell = 0
    for dist in args.dists:
        for design in args.designs:
            for failure in args.failures:
                for n in args.n:
                    cell += 1
                    tallies, labels, methods = simulate_cell(
                        dist, n, design, failure, args.sims, args.effect_sd
                    )
                    labels_all.update(labels)
                    methods_all.update(methods)
                    for kind, t in tallies.items():
                        null = 100 * t.null_decided / t.null_total if t.null_total else math.nan
                        cover = 100 * t.covered / t.with_ci if t.with_ci else float("nan")
                        where = f"{dist} {design} {failure} n={n} {kind}"
                        if null > worst["null"][0]:  # False for NaN
                            worst["null"] = (null, where)
                        if t.confidence >= 0.95 and cover < worst["cover"][0]:
                            worst["cover"] = (cover, where)
                        print(
                            f"{dist:<10}{design:<9}{failure:<9}{n:>3}  {kind:<12}"
                            f"{percent(t.null_decided, t.null_total):>9}"
                            f"{cover:>7.1f}{100 * t.confidence:>6.0f}"
                            f"{percent(t.without_ci, t.with_ci + t.without_ci):>7}"
                            f"{percent(t.reproduced, t.power_total):>7}"
                            f"{percent(t.right_side, t.power_total):>11}",
                            flush=True,
                        )
    elapsed = time.perf_counter() - started
    print(f"verdicts seen: {dict(labels_all.most_common())}")
    print(f"interval methods (no-effect data): {dict(methods_all.most_common())}")
    null, where = worst["null"]
    print(f"largest decided-under-no-effect rate: {null:.1f}% ({where}); target <= 5%")
    cover, where = worst["cover"]
    print(f"smallest coverage of a 95% interval: {cover:.1f}% ({where}); target >= 93%")
    # A rate from `sims` independent experiments has binomial Monte Carlo error.
    se_rate = 100 * math.sqrt(0.05 * 0.95 / args.sims)
    se_cover = 100 * math.sqrt(0.05 * 0.95 / (2 * args.sims))
    print(
        f"Monte Carlo standard error: {se_rate:.1f} points on a true 5% rate, {se_cover:.1f} on a "
        f"true 95% coverage (2 x {args.sims} intervals); the worst of {cell * len(CLAIM_KINDS)} "
        "rows sits 2-3 standard errors beyond the true value by chance alone"
    )
    print(f"elapsed: {elapsed:.0f} s for {cell} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
