"""Experiment files: load, override, validate, resolve.

An experiment is one YAML file in ``configs/`` (file name = experiment name, first comment line =
the command that runs it) or a path to a user's own file::

    trainer: dqn                # a name from suite/trainers.py
    task: {...}                 # the trainer's Config fields (agents/dqn.py: Config)
    budgets:                    # smoke (seconds, tests) / quick (minutes) / full (documented)
      smoke: {total_timesteps: 2000, seeds: 2}
    arms:                       # arm -> role -> spec (or the name of a configs/optimizers file)
      adam: {q: {optimizer: adam, lr: 1.0e-3}}
    seeds: 3
    metrics: [eval/return_final]
    claims: [...]               # documented claims this experiment checks (suite/claims.py)

Everything is checked before any run starts; a problem raises ConfigError naming the file and
key and, where there are any, the valid choices. YAML is read with a safe loader only.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from suite.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
OPTIMIZER_SET_DIR = CONFIG_DIR / "optimizers"
BUDGETS = ("smoke", "quick", "full")
TOP_LEVEL_KEYS = ("description", "trainer", "task", "budgets", "arms", "seeds", "metrics", "claims")
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``3e-4`` as a float.

    YAML 1.1 (PyYAML) requires a dot in floats, so ``3e-4`` would arrive as the string '3e-4'
    (the rl-baselines3-zoo pitfall); this resolver is the usual fix.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# Experiment files are small. Anchors and aliases are allowed (sharing a spec between arms), but
# not a structure that refers to itself or expands to millions of values (a "billion laughs"),
# which would hang or crash everything that walks it (hashing the run, JSON, dataclasses).
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 50


def _check_shape(data: Any) -> None:
    budget = MAX_YAML_VALUES
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"malformed YAML: expands to more than {MAX_YAML_VALUES} values (an alias bomb?)"
            )
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                f"malformed YAML: nested deeper than {MAX_YAML_DEPTH} levels"
                " (an alias that refers to itself?)"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in (*value.keys(), *value.values()))
        elif isinstance(value, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in value)


def parse_yaml(text: str, file: str | None = None) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"malformed YAML: {problem}", key=where, file=file) from None
    except RecursionError:
        raise ConfigError("malformed YAML: nested too deeply", file=file) from None
    try:
        _check_shape(data)
    except ConfigError as error:
        error.file = file
        raise
    return data


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read: {error}", file=str(path)) from None
    return parse_yaml(text, file=str(path))


# --- typed dataclasses from plain dicts -----------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against a type hint; convert only int -> float and list -> tuple."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"invalid value {value!r}", key=key, choices=list(args))
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", key=key)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", key=key)
        value_type = args[1] if args else Any
        return {str(k): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", key=key)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", key=key)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{key}." if key else ""
    for name in data:
        if name not in fields:
            raise ConfigError(f"unknown key {name!r}", key=f"{prefix}{name}", choices=list(fields))
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _coerce(data[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {name!r}", key=key or None)
    try:
        obj = cls(**values)
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error), key=key or None) from None
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as error:
            raise ConfigError(str(error), key=key or None) from None
    return obj


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
            if isinstance(spec, str):
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
        if not isinstance(node, dict) or k not in node:
            choices = list(node) if isinstance(node, dict) else None
            raise ConfigError(
                f"bad --set path: no key {k!r}", key=".".join(keys[: depth + 1]), choices=choices
            )
        node = node[k]
    if not isinstance(node, dict):
        raise ConfigError(f"bad --set path: {'.'.join(keys[:-1])} is not a mapping", key=path)
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``; nested mappings merge key by key, so a budget that sets one
    field of ``task.data`` keeps the others (lightning-hydra's "override only what differs")."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
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
    seeds = _coerce(raw_seeds, list[int], key)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError("seeds must be distinct non-negative integers", key=key)
    if len(seeds) > MAX_SEEDS or max(seeds) >= SEED_LIMIT:
        raise ConfigError(f"at most {MAX_SEEDS} seeds, each below 2**32", key=key)
    return seeds


def _resolve_arms(raw_arms: Any, roles: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    from suite.optimizers import OptimizerSpec, validate_spec

    if not isinstance(raw_arms, dict) or not raw_arms:
        raise ConfigError("expected a mapping of arm -> role -> spec", key="arms")
    arms = {}
    for arm, role_specs in raw_arms.items():
        key = f"arms.{arm}"
        if not _NAME.match(str(arm)):
            raise ConfigError("arm names use letters, digits, '-', '_' and '.'", key=key)
        if not isinstance(role_specs, dict):
            raise ConfigError("expected a mapping of role -> spec", key=key, choices=list(roles))
        for role in role_specs:
            if role not in roles:
                raise ConfigError(
                    f"unknown role {role!r}", key=f"{key}.{role}", choices=list(roles)
                )
        missing = [r for r in roles if r not in role_specs]
        if missing:
            raise ConfigError(f"missing role {missing[0]!r}", key=key, choices=list(roles))
        specs = {}
        for role in roles:
            spec = from_dict(OptimizerSpec, role_specs[role], f"{key}.{role}")
            try:
                validate_spec(spec)
            except ConfigError as error:
                raise error.within(f"{key}.{role}") from None
            except Exception as error:  # noqa: BLE001 - any rejection of a value is bad input
                raise ConfigError(
                    f"{spec.optimizer} rejects these settings: {type(error).__name__}: {error}",
                    key=f"{key}.{role}",
                ) from None
            specs[role] = spec
        arms[str(arm)] = specs
    return arms


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
    from suite.claims import validate_claims
    from suite.trainers import trainer_module

    raw = read_yaml(path)
    _check_top_level(raw)
    raw = copy.deepcopy(raw)
    _expand_spec_references(raw)
    # Precedence: task < budget tier < --set. So `--set task.x=...` applies after the budget's
    # settings are merged in, and every other override applies to the file as written.
    task_overrides = [o for o in overrides if o.lstrip().startswith("task.")]
    for assignment in overrides:
        if assignment not in task_overrides:
            apply_override(raw, assignment)
    _expand_spec_references(raw)
    _check_top_level(raw)
    module = trainer_module(raw["trainer"])
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
    merged = {"task": _deep_merge(raw["task"], budgets[budget])}
    for assignment in task_overrides:
        apply_override(merged, assignment)
    settings = merged["task"]
    seed_setting = settings.pop("seeds", raw.get("seeds", 1))
    task = from_dict(module.Config, settings, "task")
    seed_list = _resolve_seeds(seeds if seeds is not None else seed_setting, "seeds")
    resolved_arms = _resolve_arms(raw["arms"], tuple(module.roles(task)))
    file_arms = list(resolved_arms)  # claims may name arms that --arms leaves out
    if arm_names:
        unknown = [a for a in arm_names if a not in resolved_arms]
        if unknown:
            raise ConfigError(
                f"unknown arm {unknown[0]!r}", key="--arms", choices=list(resolved_arms)
            )
        resolved_arms = {a: resolved_arms[a] for a in arm_names}
    metrics = _coerce(raw.get("metrics", []), list[str], "metrics")
    claims = validate_claims(raw.get("claims"), file_arms, metrics)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("expected a string", key="description")
    return Experiment(
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
    )
