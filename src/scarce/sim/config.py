"""Experiments from TOML config files (``scarce run CONFIG.toml``).

::

    name = "my-experiment"        # default: the file name without .toml
    description = "..."           # optional
    horizon = 2000                # cases per run
    seeds = 3                     # number of seeds, or a list of root seeds
    batch_size = 1                # cases decided between policy updates
    feedback = "bandit"           # or "full"
    base_seed = 0                 # root of the seed tree when seeds is a number
    n_checkpoints = 200           # recorded steps per run (0 = every step)
    logx = false                  # log-scale step axis in regret.png

    [[envs]]
    name = "linear"               # a name of scarce.envs.ENVIRONMENTS
    label = "linear-5"            # optional, default: name
    n_actions = 5                 # anything else: keyword arguments of the environment

    [[policies]]
    name = "LinTS"                # a name of scarce.policies.POLICIES
    label = "LinTS-v0.3"          # optional, default: name
    v = 0.3                       # anything else: constructor keywords of the policy

Environments and policies are looked up in their registries (``scarce list`` shows them); a
policy gets ``n_actions`` and ``n_features`` from the environment, the run's seed, and the
parameters the environment suggests for the run (a budget and the horizon for a budgeted
environment, ``n_objectives`` for vector rewards: :meth:`~scarce.envs.Environment.policy_params`)
unless the table sets them.
"""

from __future__ import annotations

import inspect
import os
import tomllib
from pathlib import Path
from typing import Any

from scarce.sim.experiments import Experiment, ExperimentError, check_settings
from scarce.sim.sweep import RESERVED_POLICY_PARAMS, EnvSpec, PolicySpec

_TOP_KEYS = {
    "name": str,
    "description": str,
    "horizon": int,
    "seeds": (int, list),
    "batch_size": int,
    "feedback": str,
    "base_seed": int,
    "n_checkpoints": int,
    "logx": bool,
    "envs": list,
    "policies": list,
}


def load_config(path: str | os.PathLike[str]) -> Experiment:
    """Read an :class:`Experiment` from a TOML file (format in the module docstring).

    Raises
    ------
    ExperimentError
        for a missing file, invalid TOML, unknown keys, unknown policy or environment names,
        or keyword arguments the policy or environment does not take; the message lists the
        valid choices.
    """
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"config file {str(path)!r} does not exist")
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: invalid TOML: {exc}") from None
    where = str(path)

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ExperimentError(
            f"{where}: unknown key(s) {unknown}; valid top-level keys: {', '.join(_TOP_KEYS)}"
        )
    for key, types in _TOP_KEYS.items():
        if key in raw and (
            not isinstance(raw[key], types) or (isinstance(raw[key], bool) and types is int)
        ):
            want = " or ".join(
                t.__name__ for t in (types if isinstance(types, tuple) else (types,))
            )
            raise ExperimentError(f"{where}: {key} must be {want}; got {raw[key]!r}")
    for key in ("envs", "policies"):
        if not raw.get(key):
            example = "linear" if key == "envs" else "LinUCB"
            raise ExperimentError(
                f"{where}: needs at least one [[{key}]] table with a name, e.g. "
                f'[[{key}]] name = "{example}"'
            )

    envs = _parse_envs(raw["envs"], where)
    policies = _parse_policies(raw["policies"], where)
    seeds = raw.get("seeds", 3)
    n_checkpoints = raw.get("n_checkpoints", 200)
    experiment = Experiment(
        name=raw.get("name", path.stem),
        description=raw.get("description", f"from {path.name}"),
        build=lambda: (dict(policies), dict(envs)),
        horizon=raw.get("horizon", 2000),
        seeds=tuple(seeds) if isinstance(seeds, list) else seeds,
        batch_size=raw.get("batch_size", 1),
        feedback=raw.get("feedback", "bandit"),
        base_seed=raw.get("base_seed", 0),
        n_checkpoints=None if n_checkpoints == 0 else n_checkpoints,
        logx=raw.get("logx", False),
    )
    try:
        check_settings(experiment, experiment.horizon, experiment.seeds)
    except ExperimentError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    return experiment


def _tables(items: list[Any], kind: str, where: str) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    labels: set[str] = set()
    for i, item in enumerate(items):
        ref = f"{where}: {kind}[{i}]"
        if not isinstance(item, dict):
            raise ExperimentError(f"{ref} must be a table ([[{kind}]]); got {item!r}")
        params = dict(item)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ExperimentError(f'{ref} needs name = "..." (a string)')
        label = params.pop("label", name)
        if not isinstance(label, str) or not label:
            raise ExperimentError(f"{ref}: label must be a non-empty string; got {label!r}")
        if label in labels:
            raise ExperimentError(
                f"{ref}: label {label!r} is used twice; give each {kind[:-1]} a distinct label"
            )
        labels.add(label)
        out.append((name, label, params))
    return out


def _parse_policies(items: list[Any], where: str) -> dict[str, PolicySpec]:
    from scarce.policies import get_policies

    POLICIES = get_policies()

    specs = {}
    for i, (name, label, params) in enumerate(_tables(items, "policies", where)):
        ref = f"{where}: policies[{i}] ({name})"
        if name not in POLICIES:
            raise ExperimentError(
                f"{ref}: unknown policy {name!r}; valid policies: {', '.join(POLICIES)}"
            )
        cls = POLICIES[name]
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        settable = [p for p in valid if p not in RESERVED_POLICY_PARAMS]
        reserved = sorted(set(params) & set(RESERVED_POLICY_PARAMS))
        if reserved:
            raise ExperimentError(
                f"{ref}: {reserved} are set by the experiment (from the environment and the run "
                f"seed); valid keys for {name}: {', '.join(['label', *settable])}"
            )
        bad = sorted(set(params) - set(settable))
        if bad:
            raise ExperimentError(
                f"{ref}: unknown key(s) {bad}; valid keys for {name}: "
                f"{', '.join(['label', *settable])}"
            )
        specs[label] = PolicySpec(name, params)
    return specs


def _parse_envs(items: list[Any], where: str) -> dict[str, EnvSpec]:
    from scarce.envs import get_envs

    ENVIRONMENTS = get_envs()
    specs = {}
    for i, (name, label, params) in enumerate(_tables(items, "envs", where)):
        ref = f"{where}: envs[{i}] ({name})"
        if name not in ENVIRONMENTS:
            raise ExperimentError(
                f"{ref}: unknown environment {name!r}; valid environments: {', '.join(ENVIRONMENTS)}"
            )
        valid = _env_keys(name)
        if valid is not None:
            bad = sorted(set(params) - set(valid))
            if bad:
                raise ExperimentError(
                    f"{ref}: unknown key(s) {bad}; valid keys for {name}: "
                    f"{', '.join(['label', *valid])}"
                )
        specs[label] = EnvSpec(name, params)
    return specs


def _env_keys(name: str) -> list[str] | None:
    """Keyword arguments ``make_env(name, ...)`` accepts (None if they cannot be told)."""
    from scarce.envs import make_env

    try:
        env = make_env(name, seed=0)
    except ImportError as exc:
        raise ExperimentError(f"environment {name!r}: {exc}") from None
    except (TypeError, ValueError):
        return None
    params = inspect.signature(type(env).__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in ("self", "X", "y", "name")]
