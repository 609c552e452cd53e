"""Seeding: every random choice flows from an explicit seed or Generator, never a global RNG."""

from __future__ import annotations

from typing import Any

import numpy as np

SeedLike = int | np.integer | np.random.Generator | np.random.SeedSequence | None


def as_generator(seed: SeedLike) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` for ``seed``.

    ``seed`` may be ``None`` (fresh OS entropy), an int, a ``SeedSequence`` or a
    ``Generator`` (returned as is, so the caller's stream is shared on purpose).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence)):
        if isinstance(seed, (int, np.integer)) and int(seed) < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be an int, numpy.random.Generator, SeedSequence or None; got {type(seed).__name__}"
    )


def spawn(seed: SeedLike, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators derived from ``seed`` (reproducible for int seeds)."""
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(n))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(child) for child in ss.spawn(n)]


def spawn_seeds(seed: int | np.random.SeedSequence | None, n: int) -> list[int]:
    """``n`` independent integer seeds (picklable, JSON-able) derived from ``seed``."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in ss.spawn(n)]


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-able state of a generator (exact; restores the same future draws)."""
    return rng.bit_generator.state


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a generator from :func:`generator_state` output."""
    name = state.get("bit_generator")
    allowed = {"PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"}
    if name not in allowed:
        raise ValueError(
            f"unknown bit generator {name!r} in saved state; expected one of {sorted(allowed)}"
        )
    bitgen = getattr(np.random, name)()
    bitgen.state = state
    return np.random.Generator(bitgen)
