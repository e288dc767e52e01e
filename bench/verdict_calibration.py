"""Verdict calibration by worst cell: how often the judge decides when it should not, and how often
its intervals cover the truth, in every cell, with Monte Carlo intervals.

Each cell simulates ``--sims`` experiments at once (numpy arrays of shape (sims, seeds)) and
computes the judge's own intervals with :func:`suite.judge.stats.t_parts` (paired t; Welch's
standard error with Hsu's df; t on the logs for relative effects; TOST's 90% interval for
parity) and its labels. The first ``--check`` experiments of every cell also go through the
real claim path (constructed ``Result`` records, ``suite.judge.evaluate.evaluate_claim`` /
``evaluate_claims``), and the script stops if one interval or label differs.

Cells (arm B; under "no effect" arm A is drawn from the same distribution):

* distributions: ``normal`` (mean 10, sd 2); ``logn0.5``, ``logn1.0``, ``logn1.5`` (lognormal,
  median 10, sd of the log 0.5-1.5: image scores, step counts, losses); ``t3`` (Student t, 3 df,
  sd 2); ``never-learn`` (30% of seeds never learn: 1 + |N(0, 0.2)|, the rest N(10, 2));
* designs: ``paired`` (same seeds in both arms) and ``unpaired`` at n = 3, 5, 10, 20 per arm;
  unpaired ``3v10``, ``3v30``, ``5v12``, ``5v15``, ``5v30``, ``30v5`` (arm B the small one),
  ``10v30``; ``noisy3v6`` and ``noisy3v10`` (the 3-seed arm's spread 4x the other's: sd for
  normal, sd of the log for lognormal, both centred alike). Unpaired arms with fewer than
  ``rules.IMBALANCE_MIN_SEEDS`` (10) seeds in the smaller and ``rules.IMBALANCE_FACTOR`` (2.5) x as
  many in the other are refused by the judge ("inconclusive", no interval): such a cell decides
  nothing and has no coverage ("refused"); its n is the smaller arm's;
* ``diverged-A``: paired normal, arm A's runs diverge with probability 0.3 (finished runs as
  B's), so A is worse: a favourable label is wrong; the judge's headline is the rank policy;
* ``family7``: reports of 7 null direction claims (paired normal), labelled at the Holm level.

Claim kinds per cell: ``direction`` and ``absolute`` (the difference interval; the effect data
adds 1 sd of B to A), ``relative`` (the geometric-mean ratio; the effect data multiplies A by
1.5), ``parity`` (relative margin 0.2; "no effect" here is the truth exactly at the margin, A =
1.2 B, and the rate is TOST's "reproduced").

Columns: ``null dec`` the share decided under no effect (parity: reproduced at the margin;
diverged-A: a favourable label; family7: reports with any decided label), with its 95% Wilson
interval; ``cover`` the share of intervals containing the truth over both data sets (the 90%
parity interval counts as covering at 90%). A cell passes when the Wilson interval of its rate
reaches 5% (coverage: 94%, parity 89%). The headline is the worst cell per claim kind and n.

Run::

    nice python bench/verdict_calibration.py                 # 2,000 experiments per cell
    nice python bench/verdict_calibration.py --quick         # 400 per cell, for a smoke check
    nice python bench/verdict_calibration.py --labels        # label frequencies only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from suite.judge import rules, stats, verdicts  # noqa: E402
from suite.judge.claims import Claim  # noqa: E402
from suite.judge.evaluate import evaluate_claim, evaluate_claims  # noqa: E402
from suite.result import Result  # noqa: E402
from suite.schema import from_dict  # noqa: E402

ALPHA = 0.05
MARGIN = 0.2
RATIO = 1.5
KINDS = ("direction", "absolute", "relative", "parity")
DISTS = ("normal", "logn0.5", "logn1.0", "logn1.5", "t3", "never-learn")
NS = (3, 5, 10, 20)
UNEQUAL = {
    "3v10": (3, 10, 1.0),
    "3v30": (3, 30, 1.0),
    "noisy3v6": (3, 6, 4.0),
    "noisy3v10": (3, 10, 4.0),
    # around the judge's imbalance rule (rules.IMBALANCE_MIN_SEEDS / IMBALANCE_FACTOR)
    "5v12": (5, 12, 1.0),
    "5v15": (5, 15, 1.0),
    "5v30": (5, 30, 1.0),
    "30v5": (30, 5, 1.0),
    "10v30": (10, 30, 1.0),
}


def refused(n_a: int, n_b: int, paired: bool) -> bool:
    """The judge's imbalance rule (suite.judge.rules.imbalance): no interval, "inconclusive"."""
    small, big = sorted((n_a, n_b))
    return (
        not paired and small < rules.IMBALANCE_MIN_SEEDS and big >= rules.IMBALANCE_FACTOR * small
    )


# --------------------------------------------------------------------------------------------
# Draws
# --------------------------------------------------------------------------------------------


def draw(dist: str, rng: np.random.Generator, shape: tuple[int, int], spread: float = 1.0):
    """Per-seed values of one arm, shape (sims, n); ``spread`` scales the noise."""
    z = rng.standard_normal(shape)
    if dist == "normal":
        return 10.0 + 2.0 * spread * z
    if dist.startswith("logn"):
        return 10.0 * np.exp(float(dist[4:]) * spread * z)
    if dist == "t3":
        return 10.0 + spread * 2.0 / math.sqrt(3.0) * rng.standard_t(3, shape)
    if dist == "never-learn":
        never = rng.random(shape) < 0.3
        return np.where(never, 1.0 + 0.2 * spread * np.abs(z), 10.0 + 2.0 * spread * z)
    raise ValueError(dist)


def sd_of(dist: str) -> float:
    """The sd of one run's value (the absolute effect is 1 sd of B)."""
    big = draw(dist, np.random.default_rng(0), (1, 400_000))
    return float(np.std(big))


# --------------------------------------------------------------------------------------------
# The judge's intervals and labels, vectorised
# --------------------------------------------------------------------------------------------


def interval(a, b, paired: bool, log: bool, confidence: float):
    """(low, high) on the difference (or log ratio) scale, the judge's t interval per row."""
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            a, b = np.log(a), np.log(b)
    center, se, df = stats.t_parts(a, b, paired)
    q = sps.t.ppf(0.5 + confidence / 2.0, df)
    return center - q * se, center + q * se


def decided(low, high):
    return (low > 0) | (high < 0)


def size_labels(low, high, claimed: float, log: bool, tolerance: float = 2.0) -> np.ndarray:
    """verdicts.verdict for a claim > 0, per row (low/high on the log scale when ``log``)."""
    lower, upper = (
        x if not log else math.log1p(x) for x in verdicts.size_band(claimed, tolerance, log)
    )
    out = np.full(low.shape, "direction-only", dtype=object)
    out[high < lower] = "weaker"
    out[low > upper] = "stronger"
    out[(low >= lower) & (high <= upper)] = "reproduced"
    out[high < 0] = "contradicted"
    out[(low <= 0) & (high >= 0)] = "inconclusive"
    return out


@cache
def newcombe(estimate: float, n: int, m: int, confidence: float) -> tuple[float, float]:
    return stats._newcombe_ci(estimate, n, m, confidence)


def wilson(k: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (Wilson 1927)."""
    if not total:
        return math.nan, math.nan
    p = k / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


# --------------------------------------------------------------------------------------------
# The real claim path, for the first experiments of each cell
# --------------------------------------------------------------------------------------------


def claim_for(kind: str, metric: str = "m") -> Claim:
    data = {"id": "c", "statement": "s", "metric": metric, "direction": "higher", "arm": "a"}
    data["baseline"] = "b"
    effect = {"absolute": {"absolute": 2.0}, "relative": {"relative": 0.5}}
    effect["parity"] = {"equivalence_margin": MARGIN}
    if kind in effect:
        data["effect"] = effect[kind]
    return from_dict(Claim, data, "claims[0]")


def records(a, b, paired: bool, metric: str = "m", diverged=None) -> list[Result]:
    def one(arm, seed, value, gone):
        status = "diverged" if gone else "done"
        return Result(
            run_id=f"{arm}-{seed}",
            experiment="e",
            arm=arm,
            seed=seed,
            budget="quick",
            trainer="synthetic",
            task={},
            optimizers={},
            status=status,
            metrics={} if gone else {metric: float(value)},
        )

    gone = np.zeros(len(a), dtype=bool) if diverged is None else diverged
    out = [one("a", i, x, g) for i, (x, g) in enumerate(zip(a, gone, strict=True))]
    offset = 0 if paired else 1000
    return out + [one("b", offset + i, x, False) for i, x in enumerate(b)]


def check(kind: str, a, b, paired: bool, low, high) -> None:
    """The real path gives the same interval and the same decided/undecided label."""
    o = evaluate_claim(claim_for(kind), records(a, b, paired), "quick")
    if refused(len(a), len(b), paired):
        if o.verdict != "inconclusive" or not math.isnan(o.ci_low) or "imbalance" not in o.reason:
            raise SystemExit(f"{kind}: evaluate_claim did not refuse: {o.verdict}, {o.reason}")
        return
    log = kind in ("relative", "parity")
    mine = (math.expm1(low), math.expm1(high)) if log else (low, high)
    if not np.allclose((o.ci_low, o.ci_high), mine, rtol=1e-9, atol=1e-12):
        raise SystemExit(f"{kind}: evaluate_claim's CI {o.ci_low, o.ci_high} != {mine}")
    mine = decided(np.array([low]), np.array([high]))[0]
    if kind == "parity":
        mine = math.log1p(-MARGIN) <= low and high <= math.log1p(MARGIN)
        if mine != (o.verdict == "reproduced"):
            raise SystemExit(f"parity: evaluate_claim says {o.verdict}, vectorised {mine}")
    elif mine != (o.verdict in verdicts.DECIDED):
        raise SystemExit(f"{kind}: evaluate_claim says {o.verdict}, vectorised decided={mine}")


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------


def two_arm_cell(dist, n_a, n_b, paired, spread_a, sims, n_check, seed):
    """{kind: (null decided, null total, covered, with CI)} for one cell."""
    rng = np.random.default_rng(seed)
    a0, b = draw(dist, rng, (sims, n_a), spread_a), draw(dist, rng, (sims, n_b))
    shift = sd_of(dist)
    out = {}
    for kind in KINDS:
        log = kind in ("relative", "parity")
        level = 1 - 2 * ALPHA if kind == "parity" else 1 - ALPHA
        positive = np.all(a0 > 0, axis=1) & np.all(b > 0, axis=1) if log else np.ones(sims, bool)
        if kind == "parity":
            null_a, truth_null = a0 * (1 + MARGIN), math.log1p(MARGIN)
            eff_a, truth_eff = a0, 0.0
        elif log:
            null_a, truth_null, eff_a, truth_eff = a0, 0.0, a0 * RATIO, math.log(RATIO)
        else:
            null_a, truth_null, eff_a, truth_eff = a0, 0.0, a0 + shift, shift
        low, high = interval(null_a, b, paired, log, level)
        low2, high2 = interval(eff_a, b, paired, log, level)
        low, high, low2, high2 = (x[positive] for x in (low, high, low2, high2))
        if kind == "parity":
            bad = (low >= math.log1p(-MARGIN)) & (high <= math.log1p(MARGIN))
        else:
            bad = decided(low, high)
        covered = np.sum((low <= truth_null) & (truth_null <= high))
        covered += np.sum((low2 <= truth_eff) & (truth_eff <= high2))
        out[kind] = (int(bad.sum()), int(positive.sum()), int(covered), 2 * int(positive.sum()))
        if refused(n_a, n_b, paired):  # inconclusive, no interval shown: nothing decided
            out[kind] = (0, int(positive.sum()), 0, 0)
        rows = np.flatnonzero(positive)[:n_check]
        for j, r in enumerate(rows):
            check(kind, null_a[r], b[r], paired, low[j], high[j])
    return out


def diverged_cell(n, sims, n_check, seed, p=0.3):
    """Arm A diverges w.p. p; the judge's headline: ranks when a run diverged, else the t
    interval. Returns {kind: (favourable labels, sims, P(A > B) covered, with a diverged run)}."""
    rng = np.random.default_rng(seed)
    a, b = draw("normal", rng, (sims, n)), draw("normal", rng, (sims, n))
    gone = rng.random((sims, n)) < p
    any_gone = gone.any(axis=1)
    ranked = np.where(gone, -np.inf, a)
    poi = stats._poi_rows(ranked, b)
    ci = np.array([newcombe(float(x), n, n, 1 - ALPHA) for x in poi])
    favourable_rank = ci[:, 0] > 0.5
    low, high = interval(a, b, True, False, 1 - ALPHA)  # rows without a diverged run
    favourable_t = low > 0
    favourable = np.where(any_gone, favourable_rank, favourable_t)
    truth = 0.5 * (1 - p)  # P(A > B): a diverged run loses, a finished one wins half the time
    covered = int(np.sum(any_gone & (ci[:, 0] <= truth) & (truth <= ci[:, 1])))
    for r in range(min(n_check, sims)):
        o = evaluate_claim(
            claim_for("direction"), records(a[r], b[r], True, diverged=gone[r]), "quick"
        )
        if (o.verdict in ("reproduced", "direction-only")) != bool(favourable[r]):
            raise SystemExit(f"diverged-A n={n}: evaluate_claim says {o.verdict}")
    return {"direction": (int(favourable.sum()), sims, covered, int(any_gone.sum()))}


def family_cell(n, sims, n_check, seed, m=7):
    """Reports of m null direction claims: the share with any decided label at the Holm level
    (and, for comparison, the share without Holm)."""
    rng = np.random.default_rng(seed)
    a, b = draw("normal", rng, (sims, m, n)), draw("normal", rng, (sims, m, n))
    center, se, df = stats.t_parts(a, b, True)
    p = 2 * sps.t.sf(np.abs(center / se), df)
    # Holm's first step: any label decided only if the smallest p <= alpha / m.
    holm_any = np.min(p, axis=1) <= ALPHA / m
    for r in range(min(n_check, sims)):
        rs = []
        for k in range(m):
            rs += records(a[r, k], b[r, k], True, metric=f"m{k}")
        claims = [
            from_dict(Claim, {**vars_of(claim_for("direction", f"m{k}")), "id": f"c{k}"}, "c")
            for k in range(m)
        ]
        got = any(o.verdict in verdicts.DECIDED for o in evaluate_claims(claims, rs, "quick"))
        if got != bool(holm_any[r]):
            raise SystemExit(f"family7 n={n}: evaluate_claims decided={got}")
    return {"direction": (int(holm_any.sum()), sims, int(np.sum(p.min(axis=1) < ALPHA)), sims)}


def vars_of(c: Claim) -> dict:
    return c.to_dict()


# --------------------------------------------------------------------------------------------
# Label frequencies for size claims
# --------------------------------------------------------------------------------------------


def label_table(sims: int, seed: int) -> list[tuple]:
    """How often each label comes out when the claim is exactly true and when the truth is half
    of it (absolute: normal, claim +1 sd; relative: logn0.5, claim +50%), paired, n = 5-20."""
    rows = []
    rng = np.random.default_rng(seed)
    for kind, dist, claimed in (("absolute", "normal", 2.0), ("relative", "logn0.5", 0.5)):
        log = kind == "relative"
        for truth_name, factor in (("exactly true", 1.0), ("half of it", 0.5)):
            for n in (5, 10, 20):
                a, b = draw(dist, rng, (sims, n)), draw(dist, rng, (sims, n))
                a = a * (1 + factor * claimed) if log else a + factor * claimed
                low, high = interval(a, b, True, log, 1 - ALPHA)
                labels = size_labels(low, high, claimed, log)
                for r in range(20):  # the scalar rule agrees
                    lo, hi = (math.expm1(low[r]), math.expm1(high[r])) if log else (low[r], high[r])
                    assert (
                        verdicts.verdict(lo, hi, claimed, budget="q", n=n, log_scale=log)
                        == labels[r]
                    )
                share = {
                    lab: float(np.mean(labels == lab))
                    for lab in verdicts.DECIDED + ("inconclusive",)
                }
                rows.append((kind, truth_name, n, share))
    return rows


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="experiments per cell")
    parser.add_argument("--quick", action="store_true", help="400 experiments per cell")
    parser.add_argument(
        "--check",
        type=int,
        default=5,
        help="experiments per cell also judged through evaluate_claim",
    )
    parser.add_argument("--labels", action="store_true", help="only the label-frequency table")
    args = parser.parse_args(argv)
    sims = 400 if args.quick else args.sims
    started = time.perf_counter()
    print(
        f"{sims} simulated experiments per cell; the first {args.check} of each also through "
        "evaluate_claim (identical intervals and labels, or the script stops)"
    )
    if not args.labels:
        cells = run_cells(sims, args.check)
        print_cells(cells)
        print_worst(cells)
    print(
        "\nlabel frequencies (paired, 95% intervals; band claimed x [1/2, 3/2], on the log "
        "ratio for relative):"
    )
    print(
        f"{'claim':<10}{'truth':<14}{'n':>3}  "
        + "".join(f"{x:>15}" for x in verdicts.DECIDED + ("inconclusive",))
    )
    for kind, truth, n, share in label_table(sims, 99):
        print(
            f"{kind:<10}{truth:<14}{n:>3}  " + "".join(f"{100 * v:>14.1f}%" for v in share.values())
        )
    print(f"elapsed: {time.perf_counter() - started:.0f} s")
    return 0


def run_cells(sims: int, n_check: int) -> list[tuple]:
    """(name, n, kind, rate k, total, covered, with CI) for every cell."""
    cells, seed = [], 0
    for dist in DISTS:
        for paired in (True, False):
            for n in NS:
                seed += 1
                for kind, t in two_arm_cell(dist, n, n, paired, 1.0, sims, n_check, seed).items():
                    cells.append((f"{dist} {'paired' if paired else 'unpaired'}", n, kind, *t))
    for dist in ("normal", "logn1.0", "never-learn"):
        for name, (n_a, n_b, spread) in UNEQUAL.items():
            seed += 1
            for kind, t in two_arm_cell(dist, n_a, n_b, False, spread, sims, n_check, seed).items():
                cells.append((f"{dist} {name}", min(n_a, n_b), kind, *t))
    for n in NS:
        seed += 1
        for kind, t in diverged_cell(n, sims, n_check, seed).items():
            cells.append(("diverged-A (rank headline)", n, kind, *t))
        seed += 1
        for kind, t in family_cell(n, sims, min(n_check, 3), seed).items():
            cells.append(("family7 (Holm labels)", n, kind, *t))
    return cells


def passes(cell) -> tuple[bool, bool]:
    name, n, kind, k, total, covered, with_ci = cell
    rate_ok = wilson(k, total)[0] <= ALPHA
    target = 0.89 if kind == "parity" else 0.94
    if name.startswith("family7"):
        return rate_ok, True  # the second count is the uncorrected rate, not a coverage
    cover_ok = not with_ci or wilson(covered, with_ci)[1] >= target
    return rate_ok, cover_ok


def print_cells(cells) -> None:
    print(
        f"\n{'cell':<28}{'n':>3}  {'claim':<10}{'null dec [95% MC]':>24}{'cover [95% MC]':>24}  ok"
    )
    for cell in cells:
        name, n, kind, k, total, covered, with_ci = cell
        lo, hi = wilson(k, total)
        clo, chi = wilson(covered, with_ci)
        rate_ok, cover_ok = passes(cell)
        cover = (
            f"{100 * covered / with_ci:6.1f} [{100 * clo:4.1f}, {100 * chi:5.1f}]"
            if with_ci
            else "refused (no CI)"
            if name.split()[-1] in UNEQUAL
            else "n/a"
        )
        if name.startswith("family7"):
            cover = f"no Holm: {100 * covered / with_ci:5.1f}"
        print(
            f"{name:<28}{n:>3}  {kind:<10}{100 * k / total:8.2f} [{100 * lo:4.1f}, {100 * hi:4.1f}]"
            f"{cover:>24}  {'ok' if rate_ok and cover_ok else 'FAIL'}"
        )


def print_worst(cells) -> None:
    print("\nworst cell per claim kind and n (null decided / coverage, 95% Monte Carlo interval):")
    for kind in KINDS:
        for n in NS:
            mine = [c for c in cells if c[2] == kind and c[1] == n]
            if not mine:
                continue
            worst = max(mine, key=lambda c: c[3] / c[4])
            covers = [c for c in mine if c[6] and not c[0].startswith("family7")]
            low_cover = min(covers, key=lambda c: c[5] / c[6])
            lo, hi = wilson(worst[3], worst[4])
            clo, chi = wilson(low_cover[5], low_cover[6])
            ok = all(all(passes(c)) for c in mine)
            print(
                f"{kind:<10} n={n:<3} decided {100 * worst[3] / worst[4]:5.2f}% [{100 * lo:.1f}, "
                f"{100 * hi:.1f}] ({worst[0]}); coverage {100 * low_cover[5] / low_cover[6]:5.1f}% "
                f"[{100 * clo:.1f}, {100 * chi:.1f}] ({low_cover[0]}); {len(mine)} cells "
                f"{'all pass' if ok else 'NOT all pass'}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
