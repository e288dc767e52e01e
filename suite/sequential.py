"""Adding seeds until the claims are decided: ``suite run EXP --until-decided --max-seeds N``.

The grid runs, its claims are judged, and seeds are added in batches of the initial seed count
until no claim is inconclusive or ``--max-seeds`` is reached. A valid sequential procedure: with
K looks planned (:func:`suite.judge.claims.planned_looks`) every look is judged at
1 - alpha / K (Bonferroni over the looks), so the chance that any look decides a null
comparison stays <= alpha however early it stops. The design (looks planned, looks taken, seeds)
is written beside the runs for the report (suite/report/build.py ``write_sequential_design``).
"""

from __future__ import annotations

import dataclasses

from suite.errors import ConfigError


def run_until_decided(experiment, max_seeds: int | None, store, settings) -> dict[str, int]:
    """Run the grid, judge the claims, and add seeds until none is inconclusive.

    :param store: a suite.store.Store.
    :param settings: the local executor's suite.run.GridSettings.
    :returns: counts by status of the last look's grid.
    """
    from suite.config import expand, select_results
    from suite.judge.claims import planned_looks
    from suite.judge.verdicts import SMOKE_BUDGET
    from suite.report.build import claim_outcomes, write_sequential_design
    from suite.run.display import make_display
    from suite.run.local import execute_grid

    if not experiment.claims:
        raise ConfigError("this experiment has no claims to decide", key="--until-decided")
    if max_seeds is None or max_seeds < len(experiment.seeds):
        raise ConfigError(
            f"--until-decided needs --max-seeds >= the {len(experiment.seeds)} seeds planned",
            key="--max-seeds",
        )
    counts: dict[str, int] = {}
    design = {"look": 0, "looks_planned": planned_looks(len(experiment.seeds), max_seeds)}

    def run_batch(seeds: list[int]) -> list[str]:
        nonlocal counts
        batch = dataclasses.replace(experiment, seeds=seeds)
        counts = execute_grid(expand(batch), store, settings, make_display())
        design.update(look=design["look"] + 1, seeds=list(seeds), max_seeds=max_seeds)
        # A look judges its own seeds only: results stored earlier for other seeds (a plain
        # run of more seeds) would otherwise be judged too, past --max-seeds (issue 22).
        mine = [r for r in select_results(batch, store) if r.seed in set(seeds)]
        outcomes = claim_outcomes(batch, mine, design)
        if experiment.budget != SMOKE_BUDGET:  # a smoke verdict tests nothing: no design
            write_sequential_design(batch, store, design)
        level = outcomes[0].confidence if outcomes else 0.95
        print(
            f"until-decided, look {design['look']} of {design['looks_planned']}, "
            f"{len(seeds)} seeds ({100 * level:.4g}% intervals: alpha / "
            f"{design['looks_planned']} per look): "
            + ", ".join(f"{o.claim.id} {o.verdict}" for o in outcomes),
            flush=True,
        )
        return [o.verdict for o in outcomes]

    until_decided(experiment.seeds, max_seeds, run_batch)
    return counts


def until_decided(seeds: list[int], max_seeds: int, run_batch) -> list[int]:
    """Call ``run_batch(seeds)`` with more seeds until no verdict it returns is inconclusive.

    Seeds grow by batches of ``len(seeds)`` (new seeds continue after the largest), never past
    ``max_seeds``: at most :func:`suite.judge.claims.planned_looks` calls. Stopping at the first
    decided look is optional stopping (Colas et al. 2018, Sec. 5), valid only when ``run_batch``
    judges each look at alpha / looks planned, as :func:`run_until_decided` does.

    :returns: the seeds of the last batch.
    """
    batch = len(seeds)
    while True:
        verdicts = run_batch(seeds)
        if "inconclusive" not in verdicts or len(seeds) >= max_seeds:
            return seeds
        more = min(batch, max_seeds - len(seeds))
        seeds = seeds + list(range(max(seeds) + 1, max(seeds) + 1 + more))
