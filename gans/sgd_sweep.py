"""The SGD baseline of the DCGAN claim, chosen from a recorded sweep (configs/dcgan-sgd-lr-sweep).

Issue 13: SGD at two untuned learning rates collapsed in every quick run, so "+1.2 IS over SGD"
was judged against a strawman. The procedure: run the sweep (5 x 5 learning rates, 1e-4 to
1e-1), then keep the arms whose seeds all finished, none collapsed (``eval/collapsed`` = 0) or
diverged; the baseline is the one with the highest mean ``eval/is_classifier`` (ties: lower mean
FID). Nothing is chosen when every arm collapsed: then SGD has no working setting at this budget,
which is itself the finding to report.

Run: ``python -m gans.sgd_sweep [--results results] [--budget quick]``; it prints the ranking and
the ``--set`` lines that make the DCGAN experiment's ``sgd_both`` arm the chosen pair.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

SWEEP = "dcgan-sgd-lr-sweep"
TARGET = "dcgan-cifar10-adam0-rmsprop-vs-sgd"
IS_KEY, FID_KEY = "eval/is_classifier", "eval/fid_classifier"


@dataclass
class ArmSummary:
    arm: str
    seeds: int
    finished: int
    collapsed: int
    mean_is: float
    mean_fid: float
    specs: dict

    @property
    def eligible(self) -> bool:
        """Every seed finished (not diverged or failed), none collapsed, scores present."""
        return (
            self.seeds > 0
            and self.finished == self.seeds
            and self.collapsed == 0
            and math.isfinite(self.mean_is)
        )


def summarize(results) -> list[ArmSummary]:
    """One summary per arm of ``results`` (suite.result.Result objects), in arm order."""
    by_arm: dict[str, list] = {}
    for result in results:
        by_arm.setdefault(result.arm, []).append(result)
    summaries = []
    for arm, runs in sorted(by_arm.items()):
        done = [r for r in runs if r.status == "done"]
        collapsed = sum(bool(r.metrics.get("eval/collapsed", 0)) for r in done)
        summaries.append(
            ArmSummary(
                arm=arm,
                seeds=len(runs),
                finished=len(done),
                collapsed=collapsed,
                mean_is=_mean([r.metrics.get(IS_KEY, math.nan) for r in done]),
                mean_fid=_mean([r.metrics.get(FID_KEY, math.nan) for r in done]),
                specs=runs[0].optimizers,
            )
        )
    return summaries


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def choose(summaries: list[ArmSummary]) -> ArmSummary | None:
    """The best eligible arm: highest mean IS, then lowest mean FID; None if none is eligible."""
    eligible = [s for s in summaries if s.eligible]
    if not eligible:
        return None
    fid = lambda s: s.mean_fid if math.isfinite(s.mean_fid) else math.inf  # noqa: E731
    return max(eligible, key=lambda s: (s.mean_is, -fid(s)))


def set_lines(best: ArmSummary, arm: str = "sgd_both") -> list[str]:
    """``--set`` overrides that make the target experiment's ``arm`` the chosen pair."""
    lines = []
    for role in ("generator", "discriminator"):
        lines.append(f"--set arms.{arm}.{role}.lr={best.specs[role]['lr']:g}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gans.sgd_sweep", description=__doc__)
    parser.add_argument("--results", default="results", help="results directory")
    parser.add_argument("--budget", default="quick", choices=["smoke", "quick", "full"])
    args = parser.parse_args(argv)
    from suite.store import Store

    summaries = summarize(Store(args.results).results(SWEEP, args.budget))
    if not summaries:
        print(f"no results of {SWEEP} ({args.budget}) in {args.results}")
        return 1
    print(f"{'arm':<22} {'done':>6} {'collapsed':>9} {'IS':>7} {'FID':>9}  eligible")
    for s in sorted(summaries, key=lambda s: -s.mean_is if math.isfinite(s.mean_is) else 0):
        print(f"{s.arm:<22} {s.finished:>3}/{s.seeds:<2} {s.collapsed:>9} {s.mean_is:>7.3f} "
              f"{s.mean_fid:>9.3f}  {'yes' if s.eligible else 'no'}")  # fmt: skip
    best = choose(summaries)
    if best is None:
        print("no SGD setting trained without collapse: report SGD as failing at this budget")
        return 2
    print(f"baseline: {best.arm} (best non-collapsed mean IS {best.mean_is:.3f})")
    print(f"python -m suite run {TARGET} --budget {args.budget} " + " ".join(set_lines(best)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
