"""The registered fair-allocation environments (``scarce list``, TOML configs, sweeps):
``star``/``jobs`` (kernel as a keyword, default type-2) and ``star-<k>``, ``jobs-<k>``,
``groups-<k>``, ``synthetic-<k>`` for the kernel families ``k`` in instant, type1, type2;
``groups-type2-aggregate`` (only the round's aggregate outcome observed) and ``groups-mixed``
(resource-specific kernels). Each runs in :func:`scarce.sim.run` with
``batch_size=env.cohort_size`` (one round = one cohort)."""

from __future__ import annotations

from scarce.envs.registry import register_env
from scarce.fair import data


def _register() -> None:
    kinds = ("instant", "type1", "type2")
    register_env(
        "star",
        data.star_env,
        "Tennessee STAR allocation (small class / aide for ethnicity x free-lunch groups; "
        "kernel= instant|type1|type2, default type2)",
        needs_extra="data",
    )
    register_env(
        "jobs",
        data.jobs_env,
        "JOBS allocation (NSW + CPS; binary employment; training / counselling for black, "
        "hispanic, other; kernel= instant|type1|type2, default type2)",
        needs_extra="data",
    )
    for kind in kinds:
        register_env(
            f"star-{kind}",
            data.star_env,
            f"Tennessee STAR allocation, {kind} delay kernel",
            fixed={"kernel": kind},
            needs_extra="data",
        )
        register_env(
            f"jobs-{kind}",
            data.jobs_env,
            f"JOBS allocation (binary employment), {kind} delay kernel",
            fixed={"kernel": kind},
            needs_extra="data",
        )
        register_env(
            f"groups-{kind}",
            data.groups_env,
            f"synthetic groups that differ more between than within, {kind} delay kernel",
            fixed={"kernel": kind},
        )
        register_env(
            f"synthetic-{kind}",
            data.synthetic_env,
            f"ELS-like synthetic population, {kind} delay kernel",
            fixed={"kernel": kind},
        )
    register_env(
        "groups-type2-aggregate",
        data.groups_env,
        "synthetic groups, type2 kernel, only the round's aggregate outcome observed",
        fixed={"kernel": "type2", "observation": "aggregate"},
    )
    register_env(
        "groups-mixed",
        data.groups_env,
        "synthetic groups, resource-specific kernels (r0 type1, r1 type2)",
        fixed={"kernel": ("type1", "type2")},
    )


_register()
