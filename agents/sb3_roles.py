"""Make stable-baselines3 train each role with the suite's optimizer spec, and keep it so.

stable-baselines3 builds its optimizers itself (one class and one lr schedule for all of them)
and, at every ``train()``, resets every param group's lr to that one schedule
(``BaseAlgorithm._update_learning_rate``). ``RoleOptimizers`` is mixed into an SB3 algorithm
class, before it in the bases, and

- replaces SB3's optimizers with the suite's ``RoleOptimizer`` s right after SB3 builds the model,
  also when ``load()`` rebuilds it (SB3 calls ``_setup_model()`` and then loads the optimizers'
  state dicts into whatever sits at the same attribute);
- turns the lr reset into logging: each RoleOptimizer steps its own schedule per optimizer step.

The role specs (``OptimizerSpec`` records, decoded once by the worker) are in
``self.role_specs``, so they are saved with the model.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import nn

from suite.optimizers import OptimizerSpec, RoleOptimizer, build_role_optimizer, check_roles

# SB3 requires a ``learning_rate``; it only sizes the optimizers SB3 builds before
# ``install_role_optimizers`` replaces them (SAC's entropy optimizer too: it is a role). The roles
# own the real lrs, so SB3 gets this placeholder, not a copy of one of them.
SB3_LR_UNUSED = 0.0


def _set_path(obj: Any, path: str, value: Any) -> None:
    head, _, last = path.rpartition(".")
    setattr(operator.attrgetter(head)(obj) if head else obj, last, value)


class RoleOptimizers:
    """Mixin for stable-baselines3 algorithms: optimizers come from the suite's role specs."""

    role_specs: dict[str, OptimizerSpec] | None = None

    def role_parameters(self) -> dict[str, tuple[str, list[nn.Parameter], list[nn.Module]]]:
        """role -> (attribute where SB3 keeps that optimizer, parameters, modules)."""
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter some role must optimize (checked: roles are disjoint and cover it)."""
        raise NotImplementedError

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.role_specs is not None:
            self.install_role_optimizers()

    def install_role_optimizers(self) -> None:
        roles = self.role_parameters()
        check_roles(
            {role: params for role, (_, params, _) in roles.items()}, self.trainable_parameters()
        )
        for role, (attribute, params, modules) in roles.items():
            spec = self.role_specs[role]
            _set_path(self, attribute, build_role_optimizer(role, spec, params, modules))

    def role_optimizers(self) -> dict[str, RoleOptimizer]:
        return {
            role: operator.attrgetter(attribute)(self)
            for role, (attribute, _, _) in self.role_parameters().items()
        }

    def _update_learning_rate(self, optimizers) -> None:
        # SB3 would overwrite every param group's lr with its single schedule here; the suite's
        # schedules advance inside RoleOptimizer.step(), so only log what is in force.
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            self.logger.record(f"train/lr_{optimizer.role}", optimizer.lr)


def parameters_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
