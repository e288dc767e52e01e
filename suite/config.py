"""Experiment files: load, override, validate, resolve.

An experiment is one YAML file in ``configs/`` (file name = experiment name, first comment line =
the command that runs it) or a path to a user's own file::

    trainer: dqn                # a name from suite/trainers.py
    task: {...}                 # the trainer's Config fields (agents/dqn.py: Config)
    budgets:                    # smoke (seconds, tests) / quick (minutes) / full (documented)
      smoke: {total_timesteps: 2000, seeds: 2}
    arms:                       # arm -> role -> spec (or the name of a configs/optimizers file)
      adam: {q: {optimizer: adam, lr: 1.0e-3}}
      adam_mse:                 # an arm may also hold `task:`, merged over the task (below)
        q: {optimizer: adam, lr: 1.0e-3}
        task: {loss: mse}
    seeds: 3
    metrics: [eval/return_final]
    claims: [...]               # documented claims this experiment checks (suite/judge/claims.py)

An arm's ``task:`` mapping is merged (key by key, nested mappings too) over the experiment's task
after the budget's settings, and ``--set task.x=...`` applies over both: precedence task < budget
< arm < --set. That arm's runs get the merged task (in their run id; other arms keep theirs), its
roles come from it, and ``seeds`` stay per experiment.

Everything is checked before any run starts; a problem raises ConfigError naming the file and
key and, where there are any, the valid choices. YAML is read with a safe loader only.
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from suite.errors import ConfigError
from suite.paths import PROJECT_ROOT
from suite.result import RunSpec, settings_identity
from suite.schema import coerce, from_dict, parse_yaml, read_yaml

CONFIG_DIR = PROJECT_ROOT / "configs"
OPTIMIZER_SET_DIR = CONFIG_DIR / "optimizers"
BUDGETS = ("smoke", "quick", "full")
TOP_LEVEL_KEYS = (
    "description",
    "trainer",
    "task",
    "budgets",
    "arms",
    "seeds",
    "metrics",
    "claims",
    "tuning",
)
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
ARM_TASK = "task"  # the key of an arm's own task settings, beside its roles


# --- experiments -----------------------------------------------------------------------------


@dataclass
class Experiment:
    """A resolved experiment at one budget: everything a run needs, validated."""

    name: str
    path: Path
    trainer: str
    budget: str
    description: str
    task: Any  # the trainer's Config instance
    arms: dict[str, dict[str, Any]]  # arm -> role -> OptimizerSpec
    seeds: list[int]
    metrics: list[str]
    claims: list[Any] = field(default_factory=list)  # suite.claims.Claim
    raw: dict[str, Any] = field(default_factory=dict)
    arm_tasks: dict[str, Any] = field(default_factory=dict)
    """arm -> its Config, for arms with their own ``task:`` (merged over ``task``)."""
    task_overrides: list[str] = field(default_factory=list)
    """the ``--set task.*`` assignments, which change the budget tier's settings"""
    variant: list[str] = field(default_factory=list)
    """how the command line changed the file's documented configuration (``--seeds 2``,
    ``--set arms.sgd.model.lr=1000``; speed settings left out): empty for the documented one,
    whose report (``report.*``) nothing else may overwrite"""

    @property
    def budget_label(self) -> str:
        """The budget a verdict names: the tier, plus the ``--set task.*`` changes if any, so a
        verdict measured at changed settings never reads as one at the file's tier."""
        if not self.task_overrides:
            return self.budget
        return f"{self.budget} (changed by --set {', '.join(self.task_overrides)})"

    def task_for(self, arm: str) -> Any:
        """The Config the runs of ``arm`` train with."""
        return self.arm_tasks.get(arm, self.task)


def experiment_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_experiment(name_or_path: str) -> Path:
    """An experiment name in configs/, or a path to a user's own experiment file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError("no such experiment file", file=str(path))
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown experiment {name_or_path!r}", choices=experiment_names())
    return candidate


def run_command(path: Path) -> str:
    """The command on an experiment file's first comment line."""
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


def _load_optimizer_set(name: str) -> dict[str, Any]:
    path = OPTIMIZER_SET_DIR / f"{name}.yaml"
    if not _NAME.match(name) or not path.is_file():
        choices = sorted(p.stem for p in OPTIMIZER_SET_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown optimizer spec file {name!r}", choices=choices)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping (one optimizer spec)", file=str(path))
    return data


def _expand_spec_references(raw: dict[str, Any]) -> None:
    """A role given as a string names a spec file in configs/optimizers/: inline it."""
    arms = raw.get("arms")
    if not isinstance(arms, dict):
        return
    for arm, roles in arms.items():
        if not isinstance(roles, dict):
            continue
        for role, spec in roles.items():
            if isinstance(spec, str) and role != ARM_TASK:
                try:
                    roles[role] = _load_optimizer_set(spec)
                except ConfigError as error:
                    raise error.within(f"arms.{arm}.{role}") from None


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set dotted.key=value`` (value parsed as YAML) to the raw experiment."""
    path, sep, text = assignment.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(f"bad --set {assignment!r}: expected dotted.key=value", key="--set")
    value = parse_yaml(text) if text.strip() else None
    node: Any = raw
    for depth, k in enumerate(keys[:-1]):
        if isinstance(node, dict) and k not in node and not _must_exist(keys, depth):
            node[k] = {}  # e.g. arms.adam.q.kwargs.eps when the arm has no kwargs yet
        if not isinstance(node, dict) or k not in node:
            choices = list(node) if isinstance(node, dict) else None
            raise ConfigError(
                f"bad --set path: no key {k!r}", key=".".join(keys[: depth + 1]), choices=choices
            )
        node = node[k]
    if not isinstance(node, dict):
        raise ConfigError(f"bad --set path: {'.'.join(keys[:-1])} is not a mapping", key=path)
    node[keys[-1]] = value


def _must_exist(keys: list[str], depth: int) -> bool:
    """Whether ``--set`` may not create ``keys[depth]``: a top-level section or an arm, where a
    new key is a typo (``arms.adamm.q.lr`` must not add an arm), not a setting."""
    return depth == 0 or (depth == 1 and keys[0] == "arms")


def _drop_stale_kwargs(raw: dict[str, Any], overrides: list[str]) -> None:
    """After ``--set arms.A.R.optimizer=NEW``: drop the kwargs NEW does not take (kept from the
    old optimizer, not set on the command line), with one line naming them."""
    import sys

    from suite.optimizers import optimizer_class

    paths = [o.partition("=")[0].strip().split(".") for o in overrides]
    for keys in paths:
        if len(keys) != 4 or keys[0] != "arms" or keys[3] != "optimizer":
            continue
        spec = (raw.get("arms") or {}).get(keys[1], {}).get(keys[2])
        if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict):
            continue
        try:
            cls = optimizer_class(spec.get("optimizer"))
        except Exception:  # noqa: BLE001 - an unknown optimizer is reported by validation
            continue
        parameters = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            continue
        given = {tuple(k[4:5]) for k in paths if k[:4] == [*keys[:3], "kwargs"]}
        stale = [k for k in spec["kwargs"] if k not in parameters and (k,) not in given]
        for name in stale:
            del spec["kwargs"][name]
        if stale:
            where = ".".join(keys[:3])
            print(
                f"note: {where}: optimizer {spec['optimizer']} does not take "
                f"{', '.join(stale)}: dropped",
                file=sys.stderr,
            )


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``; nested mappings merge key by key, so a budget that sets one
    field of ``task.data`` keeps the others (lightning-hydra's "override only what differs")."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_top_level(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ConfigError("an experiment file must be a mapping of keys")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key {key!r}", key=str(key), choices=list(TOP_LEVEL_KEYS))
    for key in ("trainer", "task", "budgets", "arms"):
        if key not in raw:
            raise ConfigError(f"missing required key {key!r}")


# Seeds go to numpy's and gymnasium's seeding, which take 0 <= seed < 2**32; a grid of more
# runs than this per arm is a typo, not an experiment.
MAX_SEEDS = 10_000
SEED_LIMIT = 2**32


def _resolve_seeds(raw_seeds: Any, key: str) -> list[int]:
    if isinstance(raw_seeds, bool) or not isinstance(raw_seeds, (int, list)):
        raise ConfigError(f"expected a count or a list of seeds, got {raw_seeds!r}", key=key)
    if isinstance(raw_seeds, int):
        if not 1 <= raw_seeds <= MAX_SEEDS:
            raise ConfigError(f"need 1 to {MAX_SEEDS} seeds, got {raw_seeds}", key=key)
        return list(range(raw_seeds))
    seeds = coerce(raw_seeds, list[int], key)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError("seeds must be distinct non-negative integers", key=key)
    if len(seeds) > MAX_SEEDS or max(seeds) >= SEED_LIMIT:
        raise ConfigError(f"at most {MAX_SEEDS} seeds, each below 2**32", key=key)
    return seeds


def _check_arm_names(raw_arms: Any) -> None:
    if not isinstance(raw_arms, dict) or not raw_arms:
        raise ConfigError("expected a mapping of arm -> role -> spec", key="arms")
    for arm, role_specs in raw_arms.items():
        key = f"arms.{arm}"
        if not _NAME.match(str(arm)):
            raise ConfigError("arm names use letters, digits, '-', '_' and '.'", key=key)
        if not isinstance(role_specs, dict):
            raise ConfigError("expected a mapping of role -> spec", key=key)


def _resolve_arm_tasks(
    raw_arms: dict[str, Any], settings: dict[str, Any], task_overrides, config_class
) -> dict[str, Any]:
    """arm -> its Config, for each arm with a ``task:`` mapping: merged over ``settings`` (the
    experiment's task with the budget's settings), then the ``--set task.*`` overrides."""
    arm_tasks = {}
    for arm, role_specs in raw_arms.items():
        if ARM_TASK not in role_specs:
            continue
        key = f"arms.{arm}.{ARM_TASK}"
        own = role_specs[ARM_TASK]
        if not isinstance(own, dict):
            raise ConfigError("expected a mapping of task settings", key=key)
        if "seeds" in own:
            raise ConfigError("seeds are set per experiment or budget, not per arm", key=key)
        merged = {"task": copy.deepcopy(deep_merge(settings, own))}
        for assignment in task_overrides:
            apply_override(merged, assignment)
        merged["task"].pop("seeds", None)
        arm_tasks[str(arm)] = from_dict(config_class, merged["task"], key)
    return arm_tasks


def _resolve_arms(
    raw_arms: dict[str, Any], roles_of: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, Any]]:
    """arm -> role -> OptimizerSpec; ``roles_of[arm]``: the roles of that arm's task."""
    arms = {}
    for arm, raw_specs in raw_arms.items():
        key = f"arms.{arm}"
        roles = roles_of[str(arm)]
        role_specs = {role: spec for role, spec in raw_specs.items() if role != ARM_TASK}
        for role in role_specs:
            if role not in roles:
                raise ConfigError(
                    f"unknown role {role!r}", key=f"{key}.{role}", choices=list(roles)
                )
        missing = [r for r in roles if r not in role_specs]
        if missing:
            raise ConfigError(f"missing role {missing[0]!r}", key=key, choices=list(roles))
        arms[str(arm)] = {role: resolve_spec(role_specs[role], f"{key}.{role}") for role in roles}
    return arms


def resolve_spec(raw: Any, key: str) -> Any:
    """The OptimizerSpec ``raw`` describes, checked completely (suite.optimizers.validate_spec:
    names, kwargs, and values, on a dummy parameter); ConfigError names ``key``."""
    from suite.optimizers import OptimizerSpec, validate_spec

    spec = from_dict(OptimizerSpec, raw, key)
    try:
        validate_spec(spec)
    except ConfigError as error:
        raise error.within(key) from None
    except Exception as error:  # noqa: BLE001 - any rejection of a value is bad input
        raise ConfigError(
            f"{spec.optimizer} rejects these settings: {type(error).__name__}: {error}", key=key
        ) from None
    return spec


# Task settings that change how fast a run goes, not what it measures (the device gate's speed
# settings, suite/run/device.py, and CUDA graphs, suite/run/graphs.py): like --device, changing
# one with --set leaves the budget as documented.
SPEED_SETTINGS = ("amp", "channels_last", "compile", "cpu_speed_settings", "cuda_graphs")


def _speed_only(assignment: str) -> bool:
    return assignment.partition("=")[0].strip().removeprefix("task.") in SPEED_SETTINGS


def load_experiment(
    name_or_path: str,
    budget: str = "quick",
    overrides: list[str] = (),
    seeds: int | None = None,
    arms: list[str] | None = None,
) -> Experiment:
    """Load, override and validate an experiment at one budget; ConfigError names the file."""
    path = find_experiment(name_or_path)
    try:
        return _load(path, budget, overrides, seeds, arms)
    except ConfigError as error:
        error.file = error.file or str(path)
        raise


def _load(path: Path, budget: str, overrides, seeds, arm_names) -> Experiment:
    from suite.judge.claims import validate_claims
    from suite.trainers import Trainer, hook, trainer_module

    raw = read_yaml(path)
    _check_top_level(raw)
    raw = copy.deepcopy(raw)
    _expand_spec_references(raw)
    # Precedence: task < budget tier < an arm's task < --set. So `--set task.x=...` applies after
    # the budget's and the arms' settings are merged in, and every other override applies to the
    # file as written.
    task_overrides = [o for o in overrides if o.lstrip().startswith("task.")]
    for assignment in overrides:
        if assignment not in task_overrides:
            apply_override(raw, assignment)
    _drop_stale_kwargs(raw, [o for o in overrides if o not in task_overrides])
    _expand_spec_references(raw)
    _check_top_level(raw)
    _smoke_trials(raw, budget, overrides)
    try:
        module = trainer_module(raw["trainer"], beside=path.parent)
    except ConfigError as error:
        error.message += _import_hint(raw["trainer"], path)
        raise
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}", key="--budget", choices=list(BUDGETS))
    budgets = raw["budgets"]
    if not isinstance(budgets, dict) or not budgets:
        raise ConfigError("expected a mapping of budget -> settings", key="budgets")
    for name, settings in budgets.items():
        if name not in BUDGETS:
            raise ConfigError(
                f"unknown budget {name!r}", key=f"budgets.{name}", choices=list(BUDGETS)
            )
        if not isinstance(settings, dict):
            raise ConfigError("expected a mapping of settings", key=f"budgets.{name}")
    if budget not in budgets:
        raise ConfigError(
            f"this experiment has no {budget!r} budget", key="budgets", choices=list(budgets)
        )
    if not isinstance(raw["task"], dict):
        raise ConfigError("expected a mapping of settings", key="task")
    budget_settings = deep_merge(raw["task"], budgets[budget])
    merged = {"task": copy.deepcopy(budget_settings)}
    for assignment in task_overrides:
        apply_override(merged, assignment)
    settings = merged["task"]
    seed_setting = settings.pop("seeds", raw.get("seeds", 1))
    if any(o.partition("=")[0].strip() == "seeds" for o in overrides):
        seed_setting = raw["seeds"]  # --set seeds=N beats the budget's seeds, as every --set
    task = from_dict(module.Config, settings, "task")
    seed_list = _resolve_seeds(seeds if seeds is not None else seed_setting, "seeds")
    _check_arm_names(raw["arms"])
    arm_tasks = _resolve_arm_tasks(raw["arms"], budget_settings, task_overrides, module.Config)
    roles_of = {str(arm): tuple(module.roles(arm_tasks.get(str(arm), task))) for arm in raw["arms"]}
    try:
        resolved_arms = _resolve_arms(raw["arms"], roles_of)
    except ConfigError as error:
        if error.message.startswith("unknown role"):
            error.message += _roles_hint(module, task, error.value or error._given())
        raise
    file_arms = list(resolved_arms)  # claims may name arms that --arms leaves out
    if arm_names:
        unknown = [a for a in arm_names if a not in resolved_arms]
        if unknown:
            raise ConfigError(
                f"unknown arm {unknown[0]!r}", key="--arms", choices=list(resolved_arms)
            )
        resolved_arms = {a: resolved_arms[a] for a in arm_names}
        arm_tasks = {a: t for a, t in arm_tasks.items() if a in resolved_arms}
    metrics = coerce(raw.get("metrics", []), list[str], "metrics")
    claims = validate_claims(raw.get("claims"), file_arms, metrics)
    declared = hook(module, Trainer, "recorded_metrics")
    if callable(declared):  # the trainer says what it records: check the names now
        recorded = {m for config in [task, *arm_tasks.values()] for m in declared(config)}
        check_recorded(metrics, claims, recorded, raw["trainer"])
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("expected a string", key="description")
    experiment = Experiment(
        name=path.stem,
        path=path,
        trainer=raw["trainer"],
        budget=budget,
        description=description.strip(),
        task=task,
        arms=resolved_arms,
        seeds=seed_list,
        metrics=metrics,
        claims=claims,
        raw=raw,
        arm_tasks=arm_tasks,
        task_overrides=[o.strip() for o in task_overrides if not _speed_only(o)],
        variant=_variant(overrides, seeds, seed_setting),
    )
    return experiment


def _variant(overrides: list[str], seeds: int | None, file_seeds: Any) -> list[str]:
    """The changes the command line made to the file's configuration, as options: every
    ``--set`` but a speed setting, and ``--seeds N`` where it differs from the file's seeds."""
    changed = [f"--set {o.strip()}" for o in overrides if not _speed_only(o)]
    if seeds is not None and list(range(seeds)) != _resolve_seeds(file_seeds, "seeds"):
        changed.append(f"--seeds {seeds}")
    return changed


def _import_hint(trainer: Any, path: Path) -> str:
    """Where Python looked for your own trainer module (suite/trainers.py trainer_module)."""
    if not isinstance(trainer, str) or "." not in trainer or trainer in _builtin_trainers():
        return ""
    return (
        f" (your own trainer is imported from the directory you run in, {Path.cwd()}, from "
        f"PYTHONPATH, or from the experiment file's folder, {path.resolve().parent})"
    )


def _builtin_trainers() -> dict[str, str]:
    from suite.trainers import TRAINERS

    return TRAINERS


def _roles_hint(module, task: Any, role: str | None) -> str:
    """Which task setting gives a trainer the role an arm names: a trainer's roles may depend on
    its task (PPO: ``policy``, or ``actor`` + ``critic`` with ``optimizer_roles: split``), so
    each other choice of every Literal setting is tried."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(task))
    for f in dataclasses.fields(task):
        if typing.get_origin(hints.get(f.name)) is not typing.Literal:
            continue
        for choice in typing.get_args(hints[f.name]):
            if choice == getattr(task, f.name):
                continue
            try:
                roles = module.roles(dataclasses.replace(task, **{f.name: choice}))
            except Exception:  # noqa: BLE001 - a combination the trainer rejects: no hint
                continue
            if role in roles:
                return f"; with task.{f.name}: {choice} the roles are {', '.join(roles)}"
    return ""


def _smoke_trials(raw: dict[str, Any], budget: str, overrides) -> None:
    """At the smoke budget the tuning trials run at smoke too: a smoke run checks the wiring in
    seconds, and trials at the file's tier (quick: minutes each) would make ``--budget smoke
    --tuned`` take longer than the documented run. ``--set tuning.budget=...`` still decides."""
    tuning = raw.get("tuning")
    chosen = any(o.partition("=")[0].strip() in ("tuning", "tuning.budget") for o in overrides)
    # A misspelled tier stays, so that the tuning check names it (suite/tuning.py).
    valid = isinstance(tuning, dict) and tuning.get("budget", "quick") in BUDGETS
    if budget == "smoke" and valid and not chosen:
        tuning["budget"] = "smoke"


def required_metrics(metrics: list[str], claims: list[Any]) -> dict[str, str]:
    """metric -> the key that names it: the file's ``metrics``, then the claims' metrics."""
    keys = {name: f"metrics[{i}]" for i, name in enumerate(metrics)}
    for i, claim in enumerate(claims):
        keys.setdefault(claim.metric, f"claims[{i}].metric")
    return keys


def check_recorded(metrics: list[str], claims: list[Any], recorded, trainer: str) -> None:
    """Every metric the file or a claim names must be one the trainer records: a name it never
    records would leave every cell empty and every claim "not run" without a word.

    :param recorded: the metric names the trainer declares, or that a finished run recorded.
    """
    for name, key in required_metrics(metrics, claims).items():
        if name not in recorded:
            raise ConfigError(
                f"metric {name!r} is not recorded by trainer {trainer}",
                key=key,
                choices=sorted(recorded),
            )


def expand(experiment: Experiment) -> list[RunSpec]:
    """Arms x seeds, in arm order then seed order; each arm's runs get that arm's task."""
    tasks = {arm: asdict(experiment.task_for(arm)) for arm in experiment.arms}
    return [
        RunSpec(
            experiment=experiment.name,
            arm=arm,
            seed=seed,
            budget=experiment.budget,
            trainer=experiment.trainer,
            task=tasks[arm],
            optimizers={role: spec.to_dict() for role, spec in specs.items()},
        )
        for arm, specs in experiment.arms.items()
        for seed in experiment.seeds
    ]


def arm_task_changes(experiment: Experiment, arm: str) -> dict[str, Any]:
    """The settings in which ``arm``'s task differs from the experiment's (nested), for display."""
    return changes(asdict(experiment.task), asdict(experiment.task_for(arm)))


def changes(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            nested = changes(base[key], value)
            if nested:
                out[key] = nested
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def select_results(experiment: Experiment, store) -> list:
    """The experiment's results at its budget whose arm config equals the current one (a run
    recorded under an older config of the same arm is left out).

    :param store: a suite.store.Store.
    """
    wanted = {run.arm: settings_identity(run.task, run.optimizers) for run in expand(experiment)}
    return [
        result
        for result in store.results(experiment.name, experiment.budget)
        if wanted.get(result.arm) == settings_identity(result.task, result.optimizers)
    ]


def check_experiment_data(experiment: Experiment) -> None:
    """:func:`check_data_paths` over the experiment's task and each arm's own task; the error
    names the experiment file."""
    try:
        check_data_paths(experiment.task)
        for arm, task in experiment.arm_tasks.items():
            check_data_paths(task, f"arms.{arm}.task")
    except ConfigError as error:
        error.file = str(experiment.path)
        raise


def check_data_paths(task: Any, key: str = "task") -> None:
    """A missing data file or folder is an error now, not in every run (only ``run`` checks, so
    ``show`` and ``list`` work without the data). Each settings object in the task that can tell
    is asked: ``missing_data() -> message or None`` (gans/data.py ImageDataConfig)."""
    if not is_dataclass(task):
        return
    for f in fields(task):
        value, where = getattr(task, f.name), f"{key}.{f.name}"
        missing = getattr(value, "missing_data", None)
        if callable(missing):
            message = missing()
            if message is not None:
                raise ConfigError(message, key=f"{where}.path")
        elif is_dataclass(value):
            check_data_paths(value, where)
