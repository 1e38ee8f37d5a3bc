"""Attacks named for :func:`robustlearn.evaluate`, resolved into the transformers that run.

An attack is given as a registered name, a ``(name, params)`` pair or an
attack instance; each becomes an :class:`AttackSpec` carrying the transformer,
the name the report uses and the parameters that differ from the defaults.
"""

from __future__ import annotations

import copy
import inspect

from .. import registry
from ..tags import get_defense_tags
from .provenance import json_safe
from .worst_case import attack_group


class AttackSpec:
    """One resolved attack: its transformer and how the report names it."""

    def __init__(self, attack, name, params):
        self.attack = attack
        self.name = name
        self.params = params
        self.norm = getattr(attack, "norm", None)
        self.group = attack_group(self.norm)
        self.is_minimization = bool(getattr(attack, "is_minimization", False))
        self.needs_gradient = bool(getattr(attack, "needs_gradient", False))
        self.key = name


#: Attack parameters evaluate sets itself (radii per call, the victim, per-unit seeds).
_SET_BY_EVALUATE = ("epsilon", "estimator", "random_state")


def _changed_params(attack, params) -> dict:
    """Parameters of an attack instance that differ from their defaults (as sklearn's repr)."""
    try:
        signature = inspect.signature(type(attack).__init__).parameters
    except (TypeError, ValueError):
        signature = {}
    changed = {}
    for key, value in params.items():
        if key in _SET_BY_EVALUATE or key == "surrogate":
            continue
        default = signature[key].default if key in signature else inspect.Parameter.empty
        if default is inspect.Parameter.empty or repr(default) != repr(value):
            changed[key] = json_safe(value)
    return changed


def _registered_name(attack) -> str:
    """Name of the registration that makes attacks like ``attack``.

    Several registrations can share a class (``apgd-ce``, ``apgd-dlr`` and
    ``apgd-t`` are all ``APGD`` with another ``loss``), so among the factories
    producing this class, pick the one whose defaults agree with most of the
    attack's parameters.
    """
    params = attack.get_params(deep=False) if hasattr(attack, "get_params") else {}
    best, best_agreement = type(attack).__name__, -1
    for entry in registry.list_registrations("attack"):
        try:
            reference = entry.factory()
        except Exception:  # noqa: BLE001 - a factory that needs arguments cannot be compared
            continue
        if type(reference) is not type(attack):
            continue
        ref_params = reference.get_params(deep=False)
        agreement = sum(1 for key, value in ref_params.items()
                        if key in params and _same(params[key], value))
        if agreement > best_agreement:
            best, best_agreement = entry.name, agreement
    return best


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects compare as different
        return False


def _resolve_attack(item, estimator):
    if isinstance(item, str):
        name, params = item, {}
    elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
          and isinstance(item[1], dict)):
        name, params = item[0], dict(item[1])
    elif callable(getattr(item, "generate", None)):
        attack = copy.copy(item)
        own = attack.get_params(deep=False) if hasattr(attack, "get_params") else {}
        needs_victim = getattr(attack, "needs_victim", lambda: True)()
        if ("estimator" in own and own.get("estimator") is None
                and own.get("surrogate") is None and needs_victim
                and not hasattr(attack, "victim_")):
            attack.set_params(estimator=estimator)
        return AttackSpec(attack, _registered_name(item), _changed_params(attack, own))
    else:
        raise TypeError(
            "each attack must be a registered name, a (name, params dict) pair or an attack "
            f"transformer with a generate method, got {item!r}"
        )
    for key in _SET_BY_EVALUATE:
        if key in params:
            raise ValueError(f"attack {name!r}: {key} is set by evaluate, do not pass it")
    registry.get_registry().get("attack", name)  # unknown names: ValueError with a suggestion
    attack = registry.make("attack", name, estimator=estimator, **params)
    return AttackSpec(attack, name, json_safe(params))


def resolve_attacks(attacks, estimator, tags):
    if isinstance(attacks, str) or (isinstance(attacks, tuple) and len(attacks) == 2
                                    and isinstance(attacks[1], dict)):
        attacks = [attacks]
    if not isinstance(attacks, (list, tuple)) or not attacks:
        raise ValueError(f"attacks must be a non-empty list, got {attacks!r}")
    specs = [_resolve_attack(item, estimator) for item in attacks]
    for spec in specs:
        validate = getattr(spec.attack, "_validate_params", None)
        if validate is not None:
            validate()
        if spec.needs_gradient and not tags.gradient_attacks:
            raise ValueError(
                f"attack {spec.name!r} needs gradients, but {type(estimator).__name__} declares "
                "gradient_attacks=False; use decision-based or score-based attacks"
            )
    counts = {}
    for spec in specs:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    seen = {}
    for spec in specs:
        if counts[spec.name] > 1:
            described = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()
                                  if k not in ("batch_size",))
            spec.key = f"{spec.name}({described})" if described else spec.name
        seen[spec.key] = seen.get(spec.key, 0) + 1
        if seen[spec.key] > 1:
            spec.key = f"{spec.key}#{seen[spec.key]}"
    return specs


def check_attacks(attacks, estimator):
    """Validate attack specs for ``estimator`` without running them (before training it).

    Raises the ``ValueError``/``TypeError`` that :func:`evaluate` would raise for
    an unknown attack, an unknown or bad parameter, or a parameter that
    ``evaluate`` sets itself (``epsilon``). ``estimator`` may be unfitted.
    """
    resolve_attacks(attacks, estimator, get_defense_tags(estimator))
