"""The optimizer and schedule tables, the role spec, and the optimizer each role trains with.

A *spec* says how one role (``q``, ``generator``, ``critic``, ...) is optimized: optimizer name,
learning rate, that optimizer's own keyword arguments, an optional schedule (stepped once per
optimizer step), optional gradient clipping by global norm, and an optional Lookahead wrapper.

``build_role_optimizer(role, spec, params, modules)`` turns a spec into a ``RoleOptimizer``: the
one object a trainer calls ``zero_grad()`` and ``step()`` on. It clips, steps and advances the
schedule in that order, and its ``state_dict`` holds all three, so a resumed run continues the
same schedule.

List what is available with ``python -m suite list optimizers``, ``list specs`` (the named
specs in configs/optimizers/) and ``list schedules``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from suite.errors import ConfigError
from suite.optimizers.extra import LAMB, Lookahead, RMSpropDeepMind
from suite.optimizers.kfac import KFACAdam, KFACNatural


def _pytorch_optimizer(name: str):
    """Classes from the pytorch-optimizer package, imported on first use (the import is slow)."""

    def load():
        return getattr(importlib.import_module("pytorch_optimizer"), name)

    return load


@dataclass(frozen=True)
class OptimizerRow:
    """One row of the optimizer table."""

    load: Any  # the class, or a function that imports it (pytorch-optimizer imports slowly)
    source: str  # the paper and algorithm it implements
    elementwise: bool = False  # each element's update depends only on its own history, so one
    # optimizer over S stacked seeds equals S optimizers (suite run --stack-seeds)
    needs_modules: bool = False  # built with the role's modules too (K-FAC's curvature hooks)
    graph_safe: bool = False  # its step can be captured in a CUDA graph (suite/run/graphs.py):
    # device-side step counts (torch's ``capturable=True``) or none, no host reads, no Python
    # value that changes from step to step
    note: str = ""  # how the class and its defaults differ from the paper or reference code

    def cls(self) -> type:
        return self.load if isinstance(self.load, type) else self.load()


# name -> row. Written by hand: this is the whole list, and `suite list optimizers` prints it.
# Every row is checked against a float64 reference written from its source in
# tests/test_optimizer_references.py.
OPTIMIZERS: dict[str, OptimizerRow] = {
    "sgd": OptimizerRow(
        torch.optim.SGD,
        "Robbins & Monro 1951; heavy-ball momentum (Polyak 1964) and Nesterov (Sutskever et al. "
        "2013, eq. 3-4) via kwargs momentum, nesterov",
        elementwise=True,
        graph_safe=True,
        note="torch's momentum form: buf = m*buf + (1-dampening)*g, step lr*buf (Sutskever's "
        "v = m*v - lr*g is the same for a constant lr); weight_decay is L2 added to g",
    ),
    "adagrad": OptimizerRow(
        torch.optim.Adagrad,
        "Duchi et al. 2011 (diagonal AdaGrad, eq. in §1.1)",
        elementwise=True,
        note="eps 1e-10 added outside the sqrt (the paper's delta); lr_decay 0 = the paper",
    ),
    "adadelta": OptimizerRow(
        torch.optim.Adadelta,
        "Zeiler 2012, Algorithm 1",
        elementwise=True,
        graph_safe=True,
        note="torch multiplies the step by lr (default 1.0 = the paper); rho 0.9 and eps 1e-6 "
        "(the paper's experiments: rho 0.95, eps 1e-6)",
    ),
    "rmsprop": OptimizerRow(
        torch.optim.RMSprop,
        "Tieleman & Hinton 2012, Lecture 6.5; centered form: Graves 2013, §4",
        elementwise=True,
        graph_safe=True,
        note="eps outside the sqrt (Graves puts 1e-4 inside); alpha 0.99 (the lecture: 0.9)",
    ),
    "rmsprop_deepmind": OptimizerRow(
        RMSpropDeepMind,
        "Mnih et al. 2015 (Nature DQN), Extended Data Table 1 and NeuralQLearner.lua: centered, "
        "eps inside the sqrt",
        elementwise=True,
        graph_safe=True,
        note="the Lua code's gradient is the SUM over its minibatch: on a mean loss over B "
        "samples set loss_scale = B (eps acts as eps/B^2; B = 32 gives Dopamine's 1e-5)",
    ),
    "adam": OptimizerRow(
        torch.optim.Adam,
        "Kingma & Ba 2015, Algorithm 1",
        elementwise=True,
        graph_safe=True,
        note="eps added to sqrt(v_hat) as in Alg. 1; weight_decay is L2 added to g",
    ),
    "adamw": OptimizerRow(
        torch.optim.AdamW,
        "Loshchilov & Hutter 2019, Algorithm 2",
        elementwise=True,
        graph_safe=True,
        note="decay is lr * weight_decay * x (the paper: eta_t * lambda * x with eta_t the "
        "schedule multiplier, lr folded in); weight_decay default 0.01",
    ),
    "nadam": OptimizerRow(
        torch.optim.NAdam,
        "Dozat 2016, Algorithm 2 (NAdam)",
        elementwise=True,
        graph_safe=True,
        note="mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)) as Dozat's §3; the m EMA uses "
        "beta1 where Alg. 2 uses mu_t (torch and Keras do so); lr 2e-3",
    ),
    "radam": OptimizerRow(
        torch.optim.RAdam,
        "Liu et al. 2020, Algorithm 2",
        elementwise=True,
        graph_safe=True,
        note="rectified when rho_t > 5 (the paper: > 4; the authors' code uses >= 5); otherwise "
        "the un-adapted momentum step",
    ),
    "adamax": OptimizerRow(
        torch.optim.Adamax,
        "Kingma & Ba 2015, Algorithm 2 (AdaMax)",
        elementwise=True,
        graph_safe=True,
        note="u_t = max(beta2 u, |g| + eps): eps inside the max (the paper has none); lr 2e-3",
    ),
    "adafactor": OptimizerRow(
        torch.optim.Adafactor,
        "Shazeer & Stern 2018, Algorithms 4-5 with relative step sizes (§8, eq. 13)",
        note="lr is a relative-step CAP, always on: step = min(lr, 1/sqrt(t)) * max(eps2, "
        "RMS(x)) * u, so a zero tensor moves ~eps2 * lr (1e-3 * lr), not lr; torch has no "
        "switch for absolute steps; no first moment (beta1 = 0), eps1 clamps v instead of "
        "being added",
    ),
    "lamb": OptimizerRow(
        LAMB,
        "You et al. 2020, Algorithm 2 (phi = identity)",
        note="zero-norm tensors take ratio 1, as the authors' tensorflow_addons code (Alg. 2 "
        "literally gives 0); eps 1e-6; pytorch-optimizer's Lamb is not used (bias correction "
        "outside the trust ratio)",
    ),
    "adabelief": OptimizerRow(
        _pytorch_optimizer("AdaBelief"),
        "Zhuang et al. 2020, Algorithm 2",
        elementwise=True,
        note="pytorch-optimizer's defaults: rectify=False (official adabelief-pytorch >= 0.1: "
        "True), weight_decouple=True, eps 1e-16 added inside s_t as in Alg. 2",
    ),
    "kfac": OptimizerRow(
        KFACNatural,
        "Martens & Grosse 2015 §3-6; Grosse & Martens 2016 (conv); ACKTR, Wu et al. 2017 §3.1 "
        "(eigen-damping, KL clip) and baselines acktr/kfac.py",
        needs_modules=True,
        note="empirical Fisher (not sampled targets); ACKTR defaults lr 0.25, momentum 0.9 as "
        "MomentumOptimizer(lr*(1-m)), damping 0.01, stat_decay 0.99, kl_clip delta 5e-4",
    ),
    "kfac_adam": OptimizerRow(
        KFACAdam,
        "K-FAC preconditioner (Martens & Grosse 2015, §6.3 pi damping) in front of Adam",
        needs_modules=True,
        note="not a published algorithm: Adam's normalisation undoes most of the "
        "preconditioning (first step lr * sign); empirical Fisher; no trust region",
    ),
}

# Wrappers a spec adds around any row (spec key, not a name in OPTIMIZERS).
WRAPPERS: dict[str, OptimizerRow] = {
    "lookahead": OptimizerRow(
        Lookahead,
        "Zhang et al. 2019, Algorithm 1",
        note="spec key `lookahead: {k, alpha}` around any optimizer; defaults k 5, alpha 0.5 "
        "(the paper's); slow weights start at the initial parameters",
    ),
}


def check_stackable(role: str, spec: OptimizerSpec) -> None:
    """Raise ValueError unless one optimizer over stacked seeds trains each seed as alone."""
    row = OPTIMIZERS.get(spec.optimizer)
    if row is None or not row.elementwise:
        stackable = [name for name, r in OPTIMIZERS.items() if r.elementwise]
        raise ValueError(
            f"{role}: optimizer {spec.optimizer!r} cannot train stacked seeds (its update has "
            "per-tensor or cross-parameter terms, e.g. trust ratios, factored moments or "
            "curvature blocks, that would mix seeds); train these seeds one by one. Stackable: "
            + ", ".join(stackable)
        )
    if spec.kwargs.get("adanorm"):
        raise ValueError(f"{role}: adanorm uses per-tensor gradient norms; cannot stack seeds")


class WarmupCosineLR(lr_scheduler.LRScheduler):
    """Linear warm-up from ``lr / warmup_steps`` to ``lr``, then cosine decay to ``eta_min``.

    The schedule of Goyal et al. 2017 (warm-up, §2.2) followed by Loshchilov & Hutter 2017 (SGDR,
    cosine without restarts); closed form, so its state_dict is plain numbers.

    :param warmup_steps: optimizer steps of linear warm-up.
    :param total_steps: optimizer steps at which the cosine reaches ``eta_min``.
    :param eta_min: final learning rate.
    """

    def __init__(
        self,
        optimizer,
        warmup_steps: int,
        total_steps: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}"
            )
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step < self.warmup_steps:
            return [base * (step + 1) / self.warmup_steps for base in self.base_lrs]
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


# name -> scheduler class; arguments are the torch ones, counted in optimizer steps.
SCHEDULES: dict[str, type] = {
    "step": lr_scheduler.StepLR,
    "multistep": lr_scheduler.MultiStepLR,
    "exponential": lr_scheduler.ExponentialLR,
    "linear": lr_scheduler.LinearLR,
    "cyclic": lr_scheduler.CyclicLR,
    "onecycle": lr_scheduler.OneCycleLR,
    "cosine": lr_scheduler.CosineAnnealingLR,
    "warmup_cosine": WarmupCosineLR,
}


@dataclass
class ScheduleSpec:
    """A learning-rate schedule: a name from SCHEDULES and its torch keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LookaheadSpec:
    """Lookahead (Zhang et al. 2019): every ``k`` steps, move slow weights ``alpha`` of the way."""

    k: int = 5
    alpha: float = 0.5


@dataclass
class OptimizerSpec:
    """How one role is optimized.

    :param optimizer: a name from OPTIMIZERS, or ``package.module:ClassName`` for your own class.
    :param lr: learning rate (before any schedule).
    :param kwargs: the optimizer's own keyword arguments, checked against its signature.
    :param schedule: optional schedule, stepped once per optimizer step.
    :param clip_grad_norm: optional global-norm gradient clipping over this role's parameters.
    :param lookahead: optional Lookahead wrapper around the optimizer.
    """

    optimizer: str
    lr: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    clip_grad_norm: float | None = None
    lookahead: LookaheadSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CUSTOM_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def optimizer_class(name: str) -> type:
    """The class a spec's ``optimizer`` names; ConfigError listing the choices if unknown."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name].cls()
    if _CUSTOM_NAME.match(name):
        # A user's own class, imported only because the config names it explicitly.
        module_name, class_name = name.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise ConfigError(
                f"cannot import optimizer {name!r}: {error}", key="optimizer"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError(f"{name!r} is not a torch.optim.Optimizer subclass", key="optimizer")
        return cls
    raise ConfigError(
        f"unknown optimizer {name!r}",
        key="optimizer",
        choices=[*OPTIMIZERS, "package.module:ClassName"],
    )


def _named_parameters(callable_, skip: set[str]) -> tuple[list[str], bool]:
    """The keyword names a callable accepts, and whether it also takes ``**kwargs``."""
    parameters = inspect.signature(callable_).parameters
    names = [
        n
        for n, p in parameters.items()
        if n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _check_kwargs(callable_, kwargs: dict[str, Any], skip: set[str], key: str, bases=()) -> None:
    """Unknown keyword arguments are errors that list the valid ones (from the signatures).

    :param bases: the classes ``callable_``'s ``**kwargs`` may reach (its class's MRO after
        itself): their ``__init__`` names count as valid while each passes ``**kwargs`` on.
    """
    valid, var_keyword = _named_parameters(callable_, skip)
    for base in bases:
        # Follow **kwargs up the bases, to (not into) torch.optim.Optimizer, whose ``defaults``
        # is no user setting; pytorch-optimizer's classes take **kwargs and ignore them.
        if not var_keyword or base is torch.optim.Optimizer:
            break
        if "__init__" in vars(base):
            names, var_keyword = _named_parameters(base.__init__, skip | {"defaults"})
            valid += [n for n in names if n not in valid]
    for name in kwargs:
        if name not in valid:
            raise ConfigError(f"unknown argument {name!r}", key=f"{key}.{name}", choices=valid)


def validate_spec(spec: OptimizerSpec) -> None:
    """Check a spec completely before any training: names, kwargs, values.

    Beyond the signatures, the optimizer and its schedule are built once on a dummy parameter,
    so that a bad value (a negative lr, betas out of range, CyclicLR momentum cycling on Adam)
    fails now and not an hour into a grid.
    """
    cls = optimizer_class(spec.optimizer)
    _check_kwargs(
        cls.__init__,
        spec.kwargs,
        {"self", "params", "lr", "modules"},
        "kwargs",
        bases=cls.__mro__[1:],
    )
    if not (isinstance(spec.lr, (int, float)) and math.isfinite(spec.lr) and spec.lr >= 0):
        raise ConfigError(f"lr must be a finite number >= 0, got {spec.lr!r}", key="lr")
    if spec.clip_grad_norm is not None and not spec.clip_grad_norm > 0:
        raise ConfigError(f"must be > 0, got {spec.clip_grad_norm!r}", key="clip_grad_norm")
    if spec.schedule is not None:
        if spec.schedule.name not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {spec.schedule.name!r}",
                key="schedule.name",
                choices=list(SCHEDULES),
            )
        _check_kwargs(
            SCHEDULES[spec.schedule.name].__init__,
            spec.schedule.kwargs,
            {"self", "optimizer", "last_epoch", "verbose"},
            "schedule.kwargs",
        )
    if spec.lookahead is not None and not (spec.lookahead.k >= 1 and 0 < spec.lookahead.alpha <= 1):
        raise ConfigError("needs k >= 1 and 0 < alpha <= 1", key="lookahead")
    probe = nn.Linear(2, 2)
    try:
        optimizer = build_role_optimizer("probe", spec, list(probe.parameters()), [probe])
        # One real step too, so settings that only fail when stepped (a StepLR with
        # step_size 0 divides by it) fail here and not at a run's first update. A user's own
        # class is not stepped before its run (its code runs in its run's process); only
        # its schedule is.
        if spec.optimizer in OPTIMIZERS:
            probe(torch.ones(1, 2)).sum().backward()
            optimizer.step()
        elif optimizer.scheduler is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                optimizer.scheduler.step()
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - any rejection is a bad setting, in one line
        if spec.schedule is not None and _mentions_schedule(error, spec.schedule.name):
            raise ConfigError(
                f"schedule {spec.schedule.name!r} rejects its kwargs: {error}",
                key="schedule.kwargs",
            ) from None
        raise ConfigError(
            f"{spec.optimizer} rejects these settings: {error}", key="kwargs"
        ) from None


def _mentions_schedule(error: Exception, name: str) -> bool:
    # A missing argument fails at the call, before any frame of the schedule: the message names it.
    frames = traceback.extract_tb(error.__traceback__)
    named = f"{SCHEDULES[name].__name__}.__init__()" in str(error)
    return named or any("lr_scheduler" in frame.filename for frame in frames)


class RoleOptimizer:
    """One role's optimizer as the suite runs it: clip, step, then advance the schedule.

    It is what trainers call ``zero_grad()`` / ``step()`` on, and what stable-baselines3 policies
    hold as ``.optimizer`` (see agents/sb3_roles.py), so ``param_groups``, ``state_dict`` and
    ``load_state_dict`` behave like a torch optimizer's.
    """

    def __init__(self, role: str, spec: OptimizerSpec, optimizer, scheduler, params: list):
        self.role, self.spec = role, spec
        self.optimizer, self.scheduler, self.params = optimizer, scheduler, params
        self.steps = 0
        self._last_grad_norm: torch.Tensor | None = None

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    @property
    def last_grad_norm(self) -> float:
        """The gradient norm before the last clip (NaN before any clipped step)."""
        if self._last_grad_norm is None:
            return float("nan")
        return float(self._last_grad_norm)

    @property
    def inner(self) -> torch.optim.Optimizer:
        """The torch optimizer itself (inside Lookahead if there is one)."""
        return getattr(self.optimizer, "inner", self.optimizer)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        if self.spec.clip_grad_norm is not None:
            # Kept as a tensor: reading it on the host every step would sync a GPU every step.
            self._last_grad_norm = nn.utils.clip_grad_norm_(self.params, self.spec.clip_grad_norm)
        loss = self.optimizer.step(closure)
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1
        return loss

    def replayed_step(self) -> None:
        """The host side of one ``step`` that a CUDA graph replayed (suite/run/graphs.py): a
        replay runs the device work only, so the Python step counters (this one's, and a
        graph-safe optimizer's integer ``step`` such as rmsprop_deepmind's) are advanced here.
        torch's capturable optimizers count on the device and need nothing."""
        self.steps += 1
        for state in self.inner.state.values():
            if isinstance(state.get("step"), int):
                state["step"] += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore optimizer, schedule and step count (``strict`` is accepted because
        stable-baselines3 passes it to everything that is not a torch Optimizer)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.steps = int(state.get("steps", 0))

    def __repr__(self) -> str:
        return f"RoleOptimizer({self.role}: {type(self.inner).__name__}, lr={self.lr:g})"


def build_role_optimizer(
    role: str,
    spec: OptimizerSpec,
    params: Iterable[torch.Tensor],
    modules: Iterable[nn.Module] | None = None,
    capturable: bool = False,
) -> RoleOptimizer:
    """Build the optimizer, schedule and wrappers a spec describes over one role's parameters.

    :param params: the role's parameters (exactly these, see ``check_roles``).
    :param modules: the role's modules, needed by optimizers that precondition per layer (K-FAC).
    :param capturable: for a step captured in a CUDA graph (``capture_blockers`` is None): torch
        optimizers keep their step counts on the device. Same arithmetic as without.
    """
    params = [p for p in params if p.requires_grad]
    cls = optimizer_class(spec.optimizer)
    kwargs = dict(spec.kwargs)
    row = OPTIMIZERS.get(spec.optimizer)
    # A user's class says so with a ``requires_modules = True`` class attribute.
    if row.needs_modules if row else getattr(cls, "requires_modules", False):
        if not modules:
            raise ConfigError(
                f"{spec.optimizer} needs modules, and role {role!r} has none", key="optimizer"
            )
        kwargs["modules"] = list(modules)
    if capturable and "capturable" in _named_parameters(cls, set())[0]:
        kwargs["capturable"] = True  # step counts on the device (suite/run/graphs.py)
    optimizer = cls(params, lr=spec.lr, **kwargs)
    scheduler = None
    if spec.schedule is not None:
        # The schedule is attached to the inner optimizer: torch schedulers need an Optimizer,
        # and Lookahead shares the inner optimizer's param_groups, so the lr it sees follows.
        scheduler = SCHEDULES[spec.schedule.name](optimizer, **spec.schedule.kwargs)
    if spec.lookahead is not None:
        optimizer = Lookahead(optimizer, k=spec.lookahead.k, alpha=spec.lookahead.alpha)
    return RoleOptimizer(role, spec, optimizer, scheduler, params)


def capture_blockers(spec: OptimizerSpec) -> str | None:
    """Why a role with this spec cannot be stepped inside a CUDA graph (suite/run/graphs.py), or
    None when it can. A graph freezes every Python value of the step at capture: a schedule's
    learning rate, Lookahead's every-k-steps sync and host-side step counts (K-FAC's inverse
    updates, pytorch-optimizer's bias corrections) would all stop changing."""
    row = OPTIMIZERS.get(spec.optimizer)
    if row is None or not row.graph_safe:
        safe = ", ".join(name for name, r in OPTIMIZERS.items() if r.graph_safe)
        return f"optimizer {spec.optimizer!r} keeps host-side step state (graph-safe: {safe})"
    if spec.schedule is not None:
        return f"schedule {spec.schedule.name!r} changes the learning rate from the host"
    if spec.lookahead is not None:
        return "lookahead syncs its slow weights every k steps from the host"
    return None


def check_roles(role_params: dict[str, list[torch.Tensor]], model_params: Iterable[torch.Tensor]):
    """Assert the roles' parameter sets are disjoint and together cover the model's parameters.

    The nanoGPT ``configure_optimizers`` habit: every trainable parameter is optimized by exactly
    one role.
    """
    owner: dict[int, str] = {}
    for role, params in role_params.items():
        for p in params:
            if id(p) in owner:
                raise AssertionError(f"a parameter is in roles {owner[id(p)]!r} and {role!r}")
            owner[id(p)] = role
    missing = [tuple(p.shape) for p in model_params if p.requires_grad and id(p) not in owner]
    if missing:
        raise AssertionError(f"parameters in no role: shapes {missing}")


def role_details(optimizers: dict[str, Any]) -> dict[str, Any]:
    """Each role's optimizer class, final lr and step count, as recorded in a result's details
    (RoleOptimizers by role; shared by every trainer)."""
    details: dict[str, Any] = {}
    for role, optimizer in optimizers.items():
        details[f"{role}_optimizer"] = type(optimizer.inner).__name__
        details[f"{role}_lr_final"] = optimizer.lr
        details[f"{role}_optimizer_steps"] = optimizer.steps
    return details
