"""Tuning at an equal budget (``suite run EXP --tuned``): every arm's optimizer settings are
searched with the same number of trials on tuning seeds, each arm's best trial is selected, and
the selected settings are evaluated on the evaluation seeds as arms ``ARM@tuned``.

The ``tuning:`` section is shown in the README; its spaces, the selection rule and the three
phases (trials, selection, evaluation) are in docs/design.md, "Tuning at an equal budget".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from suite.errors import ConfigError
from suite.result import FINISHED, Result, RunSpec, settings_identity

ALL_ROLES = "all_roles"
SPACE_KINDS = ("log_range", "log_uniform", "uniform")
HALTON_SEED = 0  # one fixed sequence: the same trials on every machine and for every arm
SIGNIFICANT_DIGITS = 4
TRIAL_MARK, TUNED_MARK = "@t", "@tuned"
MAX_TRIALS = 1000


# --------------------------------------------------------------------------------------------
# The schema of the `tuning` section
# --------------------------------------------------------------------------------------------


@dataclass
class SelectRule:
    """How each arm's setting is chosen from its trials."""

    metric: str | None = None
    """a metric the trainer records (one of the experiment's ``metrics``); default: the first
    claim's metric, else the experiment's first metric"""
    direction: Literal["higher", "lower"] | None = None
    """whether higher or lower is better; default: the first claim's, else higher"""
    rule: Literal["mean"] = "mean"
    """mean over the tuning seeds (a trial with bad seeds loses: suite.judge.runs.is_bad)"""


@dataclass
class TuningSection:
    """An experiment file's ``tuning`` section, as written."""

    search: dict[str, Any]
    """arm -> role -> field -> space, or ``all_roles`` -> field -> space"""
    seeds: list[int]
    """tuning seeds, disjoint from the evaluation seeds"""
    trials: int = 5
    """trials per arm, the same for every arm"""
    trials_per_arm: dict[str, int] = field(default_factory=dict)
    """arm -> trials, where an arm gets another budget (the report says so)"""
    budget: Literal["smoke", "quick", "full"] = "quick"
    """the budget tier the trials run at"""
    task: dict[str, Any] = field(default_factory=dict)
    """task settings over the tier's, for the trials only (e.g. a shorter total_timesteps)"""
    select: SelectRule = field(default_factory=SelectRule)
    """the selection metric and rule"""
    include_documented: bool = False
    """the documented setting is one more trial of each searched arm (the last), run on the
    tuning seeds like the others: tuning then never selects a setting that scored below the
    documented one on the tuning seeds"""


@dataclass(frozen=True)
class Space:
    """One searched field: ``kind`` is "list", "log_range", "log_uniform" or "uniform"."""

    kind: str
    values: tuple  # the list's values, or (low, high)

    @property
    def sampled(self) -> bool:
        return self.kind in ("log_uniform", "uniform")

    @property
    def log_scale(self) -> bool:
        return self.kind in ("log_range", "log_uniform")


@dataclass(frozen=True)
class Trial:
    """One setting of one arm: ``settings`` maps ``role.field`` to the value tried."""

    arm: str
    index: int
    settings: dict[str, Any]
    optimizers: dict[str, dict[str, Any]]  # role -> OptimizerSpec dict, settings applied

    @property
    def name(self) -> str:
        return trial_name(self.arm, self.index)


@dataclass
class Plan:
    """The resolved tuning of an experiment (at its evaluation budget)."""

    section: TuningSection
    metric: str
    direction: str
    budget: str  # the trials' budget tier
    tasks: dict[str, dict[str, Any]]  # arm -> its trials' resolved task
    spaces: dict[str, dict[str, Space]]  # arm -> "role.field" -> space
    trials: dict[str, list[Trial]]  # arm -> its trials (searched arms only)

    @property
    def seeds(self) -> list[int]:
        return list(self.section.seeds)

    @property
    def counts(self) -> dict[str, int]:
        return {arm: len(trials) for arm, trials in self.trials.items()}

    @property
    def equal_budget(self) -> bool:
        return len(set(self.counts.values())) <= 1


def trial_name(arm: str, index: int) -> str:
    return f"{arm}{TRIAL_MARK}{index:02d}"


def tuned_name(arm: str) -> str:
    return f"{arm}{TUNED_MARK}"


def run_kind(arm: str) -> str:
    """``trial``, ``tuned`` or '' for a documented arm (documented names cannot hold '@')."""
    if arm.endswith(TUNED_MARK):
        return "tuned"
    base, mark, index = arm.rpartition(TRIAL_MARK)
    return "trial" if mark and base and index.isdigit() else ""


def has_tuning(experiment) -> bool:
    return experiment.raw.get("tuning") is not None


# --------------------------------------------------------------------------------------------
# Reading and checking the section (every check runs at load, before anything runs)
# --------------------------------------------------------------------------------------------


def _space(raw: Any, key: str) -> Space:
    if isinstance(raw, list):
        if not raw:
            raise ConfigError("empty list of values", key=key)
        return Space("list", tuple(raw))
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in SPACE_KINDS:
        raise ConfigError(
            f"expected a list of values or one of {{{', '.join(SPACE_KINDS)}: [low, high]}}, "
            f"got {raw!r}",
            key=key,
            choices=list(SPACE_KINDS),
        )
    ((kind, bounds),) = raw.items()
    key = f"{key}.{kind}"
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        or not all(math.isfinite(b) for b in bounds)
    ):
        raise ConfigError(f"expected [low, high], two finite numbers, got {bounds!r}", key=key)
    low, high = (float(b) for b in bounds)
    if kind != "uniform" and low <= 0:
        raise ConfigError(f"a log range needs low > 0, got {low:g}", key=key)
    if high <= low:
        raise ConfigError(f"empty range: high {high:g} must exceed low {low:g}", key=key)
    return Space(kind, (low, high))


def _fields(raw: Any, key: str) -> dict[str, Space]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("expected a mapping of field -> space (e.g. lr: {...})", key=key)
    return {str(name): _space(space, f"{key}.{name}") for name, space in raw.items()}


def _arm_spaces(search: dict[str, Any], arm: str, roles: list[str]) -> dict[str, Space]:
    """``role.field`` -> space for one arm: all_roles, then the arm's all_roles, then its own."""
    spaces: dict[str, Space] = {}
    if ALL_ROLES in search:
        shared = _fields(search[ALL_ROLES], f"tuning.search.{ALL_ROLES}")
        spaces.update({f"{role}.{name}": s for role in roles for name, s in shared.items()})
    mine = search.get(arm)
    if mine is None:
        return spaces
    key = f"tuning.search.{arm}"
    if not isinstance(mine, dict) or not mine:
        raise ConfigError("expected a mapping of role -> field -> space", key=key)
    for role in mine:
        if role != ALL_ROLES and role not in roles:
            raise ConfigError(
                f"unknown role {role!r}", key=f"{key}.{role}", choices=[*roles, ALL_ROLES]
            )
    if ALL_ROLES in mine:
        shared = _fields(mine[ALL_ROLES], f"{key}.{ALL_ROLES}")
        spaces.update({f"{role}.{name}": s for role in roles for name, s in shared.items()})
    for role in roles:
        if role in mine:
            fields = _fields(mine[role], f"{key}.{role}")
            spaces.update({f"{role}.{name}": s for name, s in fields.items()})
    return spaces


def parse_section(raw: Any, file_arms: list[str]) -> TuningSection:
    """The ``tuning`` section as a TuningSection; ConfigError names the bad key."""
    from suite.schema import from_dict

    section = from_dict(TuningSection, raw, "tuning")
    if not section.search:
        raise ConfigError("nothing to search: name arms (or all_roles)", key="tuning.search")
    for arm in section.search:
        if arm != ALL_ROLES and arm not in file_arms:
            raise ConfigError(
                f"unknown arm {arm!r}", key=f"tuning.search.{arm}", choices=[*file_arms, ALL_ROLES]
            )
    for arm, n in {"": section.trials, **section.trials_per_arm}.items():
        key = f"tuning.trials_per_arm.{arm}" if arm else "tuning.trials"
        if arm and arm not in file_arms:
            raise ConfigError(f"unknown arm {arm!r}", key=key, choices=file_arms)
        if not 1 <= n <= MAX_TRIALS:
            raise ConfigError(f"need 1 to {MAX_TRIALS} trials, got {n}", key=key)
    seeds = section.seeds
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) >= 2**32:
        raise ConfigError(
            "tuning seeds must be distinct integers in [0, 2**32)", key="tuning.seeds"
        )
    return section


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _unit_points(n: int, dims: int) -> np.ndarray:
    """``n`` points of a scrambled Halton sequence in [0, 1)^dims, shape (n, dims)."""
    if dims == 0:
        return np.zeros((n, 0))
    from scipy.stats import qmc

    return qmc.Halton(d=dims, scramble=True, seed=HALTON_SEED).random(n)


def trial_values(spaces: dict[str, Space], n: int) -> list[dict[str, Any]]:
    """The settings of ``n`` trials over ``spaces`` (``role.field`` -> space), in trial order.

    Grid spaces give trial i their i-th point (lists must hold ``n`` values); sampled spaces are
    the dimensions of one scrambled Halton sequence (docs/design.md, "Tuning at an equal
    budget").
    """
    sampled = [name for name in sorted(spaces) if spaces[name].sampled]
    unit = _unit_points(n, len(sampled))
    trials: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, space in spaces.items():
        if space.kind == "list":
            column = list(space.values)
        elif space.kind == "log_range":
            column = [_round(v) for v in np.geomspace(*space.values, n)]
        else:
            u = unit[:, sampled.index(name)]
            low, high = space.values
            if space.kind == "log_uniform":
                column = [_round(math.exp(math.log(low) + x * math.log(high / low))) for x in u]
            else:
                column = [_round(low + x * (high - low)) for x in u]
        for i in range(n):
            trials[i][name] = column[i]
    return trials


def documented_settings(optimizers: dict, names) -> dict[str, Any]:
    """The documented value of each ``role.field`` in ``names`` (None where the spec sets none)."""
    out = {}
    for name in names:
        role, _, path = name.partition(".")
        node: Any = optimizers[role].to_dict()
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[name] = node
    return out


def _documented_values(optimizers: dict, spaces: dict[str, Space], arm: str) -> dict[str, Any]:
    """The documented value of each searched ``role.field`` (``include_documented``'s trial)."""
    values = documented_settings(optimizers, spaces)
    for name, value in values.items():
        if value is None:
            raise ConfigError(
                "include_documented needs the documented value of every searched field; "
                f"arm {arm!r} does not set it (write the default into the arm)",
                key=f"tuning.search.{arm}.{name}",
            )
    return values


def _with_settings(optimizers: dict[str, dict], settings: dict[str, Any], key: str) -> dict:
    """Copies of the role specs with ``role.field`` settings applied and validated."""
    from suite.config import resolve_spec

    out = {role: spec.to_dict() for role, spec in optimizers.items()}
    for name, value in settings.items():
        role, _, path = name.partition(".")
        node = out[role]
        parts = path.split(".")
        field_key = f"{key}.{role}.{path}"
        if parts[0] not in node:
            raise ConfigError(
                f"unknown key {parts[0]!r} of an optimizer spec", key=field_key, choices=list(node)
            )
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"the documented spec has no mapping {where!r}", key=field_key)
            node = node[part]
        node[parts[-1]] = value
    return {role: resolve_spec(spec, f"{key}.{role}").to_dict() for role, spec in out.items()}


def _selection_metric(section: TuningSection, experiment) -> tuple[str, str]:
    metric, direction = section.select.metric, section.select.direction
    if metric is None:
        if experiment.claims:
            metric = experiment.claims[0].metric
            direction = direction or experiment.claims[0].direction
        elif experiment.metrics:
            metric = experiment.metrics[0]
        else:
            raise ConfigError("no metric to select on: give one", key="tuning.select.metric")
    if experiment.metrics and metric not in experiment.metrics:
        raise ConfigError(
            f"metric {metric!r} is not among the metrics this experiment records",
            key="tuning.select.metric",
            choices=experiment.metrics,
        )
    return metric, direction or "higher"


def _trial_task(
    experiment, section: TuningSection, arm: str, with_set: bool = True
) -> dict[str, Any]:
    """An arm's trial task: the file's task, the tuning tier's settings, the arm's own ``task``,
    the ``--set task.*`` overrides, then ``tuning.task`` (the precedence of suite/config.py,
    with the tuning tier and tuning.task)."""
    from suite.config import ARM_TASK, apply_override, deep_merge
    from suite.schema import from_dict
    from suite.trainers import trainer_module

    budgets = experiment.raw["budgets"]
    if section.budget not in budgets:
        raise ConfigError(
            f"this experiment has no {section.budget!r} budget",
            key="tuning.budget",
            choices=list(budgets),
        )
    if "seeds" in section.task:
        raise ConfigError("tuning seeds go in tuning.seeds", key="tuning.task.seeds")
    merged = deep_merge(experiment.raw["task"], budgets[section.budget])
    merged = deep_merge(merged, experiment.raw["arms"][arm].get(ARM_TASK) or {})
    overridden = {"task": merged}
    # --set task.* changes trials and evaluations (with_set=False: the file's trials alone)
    for assignment in experiment.task_overrides if with_set else []:
        apply_override(overridden, assignment)
    merged = deep_merge(overridden["task"], section.task)
    merged.pop("seeds", None)
    config = from_dict(trainer_module(experiment.trainer).Config, merged, "tuning.task")
    return asdict(config)


def build_plan(experiment, with_set: bool = True) -> Plan:
    """The experiment's tuning, resolved and checked; ConfigError names the key.

    :param with_set: apply the ``--set task.*`` overrides to the trials (as ``--tuned`` runs
        them); False checks the file's section alone (a plain run, which runs no trial).
    """
    raw_arms = experiment.raw["arms"]
    section = parse_section(experiment.raw["tuning"], list(raw_arms))
    overlap = sorted(set(section.seeds) & set(experiment.seeds))
    if overlap:
        raise ConfigError(
            f"tuning seeds {overlap} are also evaluation seeds {experiment.seeds} at the "
            f"{experiment.budget} budget: selection must not see them",
            key="tuning.seeds",
        )
    metric, direction = _selection_metric(section, experiment)
    searched = list(raw_arms) if ALL_ROLES in section.search else list(section.search)
    spaces, trials, tasks = {}, {}, {}
    for arm in searched:
        if arm not in experiment.arms:  # left out with --arms
            continue
        documented = experiment.arms[arm]
        arm_spaces = _arm_spaces(section.search, arm, list(documented))
        n = section.trials_per_arm.get(arm, section.trials)
        for name, space in arm_spaces.items():
            if space.kind == "list" and len(space.values) != n:
                role, _, path = name.partition(".")
                raise ConfigError(
                    f"a list of {len(space.values)} values for {n} trials: give one value per "
                    "trial, or a range",
                    key=f"tuning.search.{arm}.{role}.{path}",
                )
        spaces[arm] = arm_spaces
        tasks[arm] = _trial_task(experiment, section, arm, with_set)
        values = trial_values(arm_spaces, n)
        if section.include_documented:
            values.append(_documented_values(documented, arm_spaces, arm))
        trials[arm] = [
            Trial(arm, i, v, _with_settings(documented, v, f"tuning.search.{arm}"))
            for i, v in enumerate(values)
        ]
    return Plan(section, metric, direction, section.budget, tasks, spaces, trials)


def check_tuned(experiment, until_decided: bool = False) -> None:
    """``--tuned`` needs a ``tuning`` section and is not ``--until-decided``."""
    if not has_tuning(experiment):
        raise ConfigError("this experiment has no `tuning` section", key="--tuned")
    if until_decided:
        raise ConfigError("not with --tuned (the tuned seeds are fixed)", key="--until-decided")
    try:
        build_plan(experiment)  # the trials as they will run, --set task.* included
    except ConfigError as error:
        if experiment.task_overrides and not (error.key or "").startswith("tuning"):
            error.message = (
                f"the tuning trials (at their tier plus --set "
                f"{', '.join(experiment.task_overrides)}): {error.message}"
            )
        error.file = error.file or str(experiment.path)
        raise


def check_tuning(experiment) -> None:
    """Check an experiment's ``tuning`` section as the file writes it, if it has one (the CLI
    calls this right after loading, before anything runs). A plain run's ``--set task.*`` may
    make the trials' tier invalid (a smoke run's step count at the quick tier); that matters
    only to ``--tuned`` (:func:`check_tuned`), which checks the trials with it."""
    if has_tuning(experiment):
        build_plan(experiment, with_set=False)


# --------------------------------------------------------------------------------------------
# Runs: trials, then the evaluation of the selected settings
# --------------------------------------------------------------------------------------------


def trial_runs(experiment, plan: Plan) -> list[RunSpec]:
    """Every trial at every tuning seed, in arm, trial, seed order."""
    return [
        RunSpec(
            experiment=experiment.name,
            arm=trial.name,
            seed=seed,
            budget=plan.budget,
            trainer=experiment.trainer,
            task=plan.tasks[arm],
            optimizers=trial.optimizers,
        )
        for arm, trials in plan.trials.items()
        for trial in trials
        for seed in plan.seeds
    ]


@dataclass
class TrialScore:
    """One trial's selection metric over the tuning seeds."""

    trial: Trial
    values: list[float]  # finite values of the seeds that are not bad
    n_bad: int  # suite.judge.runs.is_bad: diverged, failed, degenerate, or no finite metric
    n_missing: int  # tuning seeds with no finished run yet
    mean: float | None  # over ``values``
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.trial.name,
            "index": self.trial.index,
            "settings": self.trial.settings,
            "values": self.values,
            "n_bad": self.n_bad,
            "n_missing": self.n_missing,
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


def score_trial(trial: Trial, results: list[Result], metric: str, seeds: list[int]) -> TrialScore:
    """``results``: the trial's runs (other seeds and arms are ignored)."""
    from suite.judge.runs import is_bad
    from suite.judge.stats import bootstrap_ci

    by_seed = {r.seed: r for r in results if r.arm == trial.name and r.seed in seeds}
    finished = {s: r for s, r in by_seed.items() if r.status in (*FINISHED, "failed")}
    good = [float(r.metrics[metric]) for r in finished.values() if not is_bad(r, metric)]
    values = np.array(good, dtype=float)
    low, high = bootstrap_ci(values) if values.size else (float("nan"), float("nan"))
    nan_none = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    return TrialScore(
        trial=trial,
        values=good,
        n_bad=len(finished) - len(good),
        n_missing=len(seeds) - len(finished),
        mean=float(values.mean()) if values.size else None,
        ci_low=nan_none(low),
        ci_high=nan_none(high),
    )


def rank_key(score: TrialScore, direction: str) -> tuple:
    """Fewer bad seeds first, then the better mean, then the lower trial number."""
    if score.mean is None:
        return (score.n_bad, math.inf, score.trial.index)
    better = -score.mean if direction == "higher" else score.mean
    return (score.n_bad, better, score.trial.index)


@dataclass
class ArmSelection:
    """One arm's trials scored, and the one selected (None until every trial run finished)."""

    arm: str
    scores: list[TrialScore]
    selected: TrialScore | None

    @property
    def complete(self) -> bool:
        return all(s.n_missing == 0 for s in self.scores)


def select(plan: Plan, results: list[Result]) -> dict[str, ArmSelection]:
    """Each searched arm's best trial by the selection rule, from trial results only.

    :param results: any results; only the plan's trial runs at the tuning seeds are read (pass
        only runs of the current trial specs: :func:`trial_results`).
    """
    out = {}
    for arm, trials in plan.trials.items():
        scores = [score_trial(t, results, plan.metric, plan.seeds) for t in trials]
        selected = None
        if all(s.n_missing == 0 for s in scores):
            selected = min(scores, key=lambda s: rank_key(s, plan.direction))
        out[arm] = ArmSelection(arm, scores, selected)
    return out


def trial_results(experiment, plan: Plan, store) -> list[Result]:
    """The results of exactly this plan's trial runs (an edited search has other ids)."""
    wanted = {run.run_id for run in trial_runs(experiment, plan)}
    return [r for r in store.results(experiment.name, plan.budget) if r.run_id in wanted]


def selected_documented(experiment, chosen: ArmSelection) -> bool:
    """Whether the selected setting is the documented one: then the documented runs are the
    tuned arm's runs (same settings, same seeds) and no ``ARM@tuned`` run is made."""
    documented = {role: spec.to_dict() for role, spec in experiment.arms[chosen.arm].items()}
    return chosen.selected is not None and chosen.selected.trial.optimizers == documented


def evaluation_runs(experiment, plan: Plan, selection: dict[str, ArmSelection]) -> list[RunSpec]:
    """Each tuned arm (``ARM@tuned``) at its selected settings, then the documented grid. The
    tuned runs come first: they decide the headline, so a grid cut short (a session's end, a
    long grid on a small machine) has them before the documented arms."""
    from suite.config import expand

    runs = []
    for arm, chosen in selection.items():
        if chosen.selected is None or selected_documented(experiment, chosen):
            continue  # nothing selected yet, or the documented runs are the tuned ones
        runs += [
            RunSpec(
                experiment=experiment.name,
                arm=tuned_name(arm),
                seed=seed,
                budget=experiment.budget,
                trainer=experiment.trainer,
                task=asdict(experiment.task_for(arm)),
                optimizers=chosen.selected.trial.optimizers,
            )
            for seed in experiment.seeds
        ]
    return runs + expand(experiment)


def tuned_results(experiment, plan: Plan, selection, store, documented: list[Result]) -> list:
    """The tuned comparison's results under the claim's arm names: each ``ARM@tuned`` run of the
    selected settings renamed ``ARM`` (every seed run with them, as for documented arms), and
    the arms without a search as documented.

    :param documented: the documented arms' results (suite.config.select_results).
    """
    wanted = {}
    for run in evaluation_runs(experiment, plan, selection):
        if run.arm.endswith(TUNED_MARK):
            wanted[run.arm] = settings_identity(run.task, run.optimizers)
    same = {arm for arm, chosen in selection.items() if selected_documented(experiment, chosen)}
    out = [r for r in documented if r.arm not in plan.trials or r.arm in same]
    for r in store.results(experiment.name, experiment.budget):
        selected = wanted.get(r.arm) == settings_identity(r.task, r.optimizers)
        if selected and r.seed not in plan.seeds:
            out.append(dataclasses.replace(r, arm=r.arm[: -len(TUNED_MARK)]))
    return out


def run_tuned(experiment, store, settings, grid, make_display) -> dict[str, int]:
    """``suite run EXP --tuned``: trials, selection, then the documented and tuned evaluation.

    :param grid: an executor module (suite.run.executor(...)) with ``execute_grid``.
    :param make_display: a function returning a fresh progress display.
    :returns: counts by status over both grids.
    """
    plan = build_plan(experiment)
    trials = trial_runs(experiment, plan)
    print(
        f"tuning: {len(plan.trials)} arms x {describe_counts(plan)} trials x "
        f"{len(plan.seeds)} tuning seeds {plan.seeds} = {len(trials)} trial runs "
        f"[{plan.budget} budget], selecting on {plan.metric} ({plan.direction}, mean)",
        flush=True,
    )
    counts = dict(grid.execute_grid(trials, store, settings, make_display()))
    selection = select(plan, trial_results(experiment, plan, store))
    for chosen in selection.values():
        print(f"  {selection_line(plan, chosen)}", flush=True)
    runs = evaluation_runs(experiment, plan, selection)
    print(
        f"evaluation: {len(runs)} runs at seeds {experiment.seeds} [{experiment.budget} budget]: "
        "ARM@tuned where the selected setting is not the documented one, then the documented arms",
        flush=True,
    )
    for status, n in grid.execute_grid(runs, store, settings, make_display()).items():
        counts[status] = counts.get(status, 0) + n
    return counts


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()
    )


def describe_counts(plan: Plan) -> str:
    counts = plan.counts
    if plan.equal_budget:
        return str(next(iter(counts.values()), 0))
    return "(" + ", ".join(f"{arm} {n}" for arm, n in counts.items()) + ")"


def selection_line(plan: Plan, chosen: ArmSelection) -> str:
    if chosen.selected is None:
        missing = sum(s.n_missing for s in chosen.scores)
        return f"{chosen.arm}: not selected yet ({missing} trial runs unfinished)"
    s = chosen.selected
    mean = "n/a" if s.mean is None else f"{s.mean:.4g}"
    bad = f", {s.n_bad} of {len(plan.seeds)} seeds bad (every trial had some)" if s.n_bad else ""
    return (
        f"{chosen.arm}: selected {s.trial.name} {settings_text(s.trial.settings)} "
        f"({plan.metric} mean {mean} over tuning seeds{bad})"
    )


def show(experiment) -> dict[str, Any]:
    """What ``suite show EXP --tuned`` prints: the resolved trials and the evaluation."""
    plan = build_plan(experiment)
    runs = {r.arm: r for r in trial_runs(experiment, plan)}
    return {
        "tuning": {
            "budget": plan.budget,
            "task_vs_evaluation": _task_changes(experiment, plan),
            "seeds": plan.seeds,
            "evaluation_seeds": list(experiment.seeds),
            "evaluation_budget": experiment.budget,
            "select": {"metric": plan.metric, "direction": plan.direction, "rule": "mean"},
            "trials_per_arm": plan.counts,
            "equal_budget": plan.equal_budget,
            "trials": {
                arm: [
                    {"trial": t.name, **t.settings, "run_ids": _ids(runs, t, plan)} for t in trials
                ]
                for arm, trials in plan.trials.items()
            },
            "tuned_arms": [tuned_name(arm) for arm in plan.trials],
        }
    }


def _task_changes(experiment, plan: Plan) -> dict[str, Any]:
    """How the trials' task differs from the evaluation runs' (one mapping when every arm's
    differs the same way, else per arm)."""
    from suite.config import changes

    changes = {
        arm: changes(asdict(experiment.task_for(arm)), task) for arm, task in plan.tasks.items()
    }
    distinct = {repr(c) for c in changes.values()}
    return next(iter(changes.values())) if len(distinct) == 1 else changes


def _ids(runs: dict[str, RunSpec], trial: Trial, plan: Plan) -> list[str]:
    run = runs[trial.name]
    return [dataclasses.replace(run, seed=seed).run_id for seed in plan.seeds]
