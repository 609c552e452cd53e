"""Attribution of delayed, overlapping, aggregated outcomes: exact and seeded checks."""

import numpy as np
import pytest

from scarce.feedback import (
    AllocationLog,
    CompletedMass,
    DelayAgnostic,
    DelayKernel,
    KernelConvolvedLS,
    ObservationLog,
    fit_ridge,
    kernel_family,
    make_attribution,
)
from scarce.feedback.attribution import convolve_outcomes


def allocations(rng, n_units=60, rounds=40, per_round=12, R=2, d=3):
    """Random allocations with many overlaps (units are re-allocated within windows)."""
    X = rng.normal(size=(n_units, d))
    unit = np.concatenate([rng.choice(n_units, per_round, replace=False) for _ in range(rounds)])
    rnd = np.repeat(np.arange(rounds), per_round)
    res = rng.integers(R, size=unit.size)
    phi = np.zeros((unit.size, R * (d + 1)))
    for r in range(R):
        rows = res == r
        phi[rows, r * (d + 1)] = 1.0
        phi[rows, r * (d + 1) + 1 : (r + 1) * (d + 1)] = X[unit[rows]]
    return AllocationLog(unit, res, rnd, phi)


KERNELS = [kernel_family("type1", 8), kernel_family("type2", 8)]


@pytest.mark.parametrize("aggregate", [False, True])
def test_kernel_ls_recovers_coefficients_exactly_from_noiseless_data(aggregate):
    rng = np.random.default_rng(0)
    alloc = allocations(rng)
    theta = rng.normal(size=alloc.features.shape[1])
    now = 39
    obs = convolve_outcomes(alloc, alloc.features @ theta, KERNELS, now, aggregate=aggregate)
    Z, y, w = KernelConvolvedLS().design(alloc, obs, KERNELS, now)
    est = fit_ridge(Z, y, w, lam=1e-9).theta[0]
    np.testing.assert_allclose(est, theta, atol=1e-6)


def test_kernel_ls_recovers_per_allocation_effects_from_aggregates():
    # identity features: each allocation is its own parameter; aggregates y(t) over 12 rounds
    # with a 3-lag kernel, one allocation per round so the convolution is invertible
    k = DelayKernel([0.5, 0.3, 0.2])
    n = 12
    alloc = AllocationLog(np.arange(n), np.zeros(n), np.arange(n), np.eye(n))
    effects = np.random.default_rng(1).normal(size=n)
    obs = convolve_outcomes(alloc, effects, [k], now=n + 1, aggregate=True)
    assert obs.unit is None and obs.round.tolist() == list(range(n + 2))
    np.testing.assert_allclose(
        obs.value[:3],
        [
            0.5 * effects[0],
            0.3 * effects[0] + 0.5 * effects[1],
            0.2 * effects[0] + 0.3 * effects[1] + 0.5 * effects[2],
        ],
    )
    Z, y, w = KernelConvolvedLS().design(alloc, obs, [k], n + 1)
    est = np.linalg.lstsq(Z, y, rcond=None)[0]
    np.testing.assert_allclose(est, effects, atol=1e-12)


def test_design_rows_match_brute_force():
    rng = np.random.default_rng(2)
    alloc = allocations(rng, n_units=8, rounds=6, per_round=3)
    now = 5
    theta = rng.normal(size=alloc.features.shape[1])
    obs = convolve_outcomes(alloc, alloc.features @ theta, KERNELS, now)
    Z, y, _ = KernelConvolvedLS().design(alloc, obs, KERNELS, now)
    brute = {}
    for a in range(len(alloc)):
        k = KERNELS[alloc.resource[a]]
        for t in range(alloc.round[a], now + 1):
            w = k.at(np.array([t - alloc.round[a]]))[0]
            if w > 0:
                key = (alloc.unit[a], t)
                brute[key] = brute.get(key, 0) + w * alloc.features[a]
    keys = sorted(brute)
    np.testing.assert_allclose(Z, np.array([brute[k] for k in keys]), atol=1e-14)
    np.testing.assert_allclose(y, Z @ theta, atol=1e-12)


def test_acceptance_kernel_ls_within_5pct_where_delay_agnostic_is_biased():
    rng = np.random.default_rng(3)
    alloc = allocations(rng, n_units=200, rounds=60, per_round=40)
    theta = np.array([1.0, 0.8, -0.5, 0.3, 2.0, -0.4, 0.6, 1.2])
    now = 59
    obs = convolve_outcomes(alloc, alloc.features @ theta, KERNELS, now)
    noisy = ObservationLog(obs.unit, obs.round, obs.value + rng.normal(0, 0.03, obs.value.shape))
    est = {}
    for name in ("kernel_ls", "completed_mass", "delay_agnostic"):
        att = make_attribution(name)
        Z, y, w = att.design(alloc, noisy, KERNELS, now, predicted=alloc.features @ theta)
        est[name] = fit_ridge(Z, y, w, lam=1e-6).theta[0]
    rel = lambda e: np.abs(e - theta) / np.abs(theta)  # noqa: E731
    assert rel(est["kernel_ls"]).max() < 0.05
    assert rel(est["delay_agnostic"]).max() > 0.2  # biased by truncation and overlap
    # the cheap online estimator sits in between (noise is amplified by 1/m for young windows)
    assert rel(est["kernel_ls"]).max() < rel(est["completed_mass"]).max()
    assert rel(est["completed_mass"]).max() < rel(est["delay_agnostic"]).max()


def test_completed_mass_exact_without_overlap():
    k = kernel_family("type1", 8)
    n = 30
    x = np.linspace(-1, 1, n)
    alloc = AllocationLog(np.arange(n), np.zeros(n), np.arange(n), np.stack([np.ones(n), x], 1))
    theta = np.array([0.5, 2.0])
    now = n - 1
    obs = convolve_outcomes(alloc, alloc.features @ theta, [k], now)
    Z, y, w = CompletedMass(min_mass=0.05).design(alloc, obs, [k], now)
    m = k.completed_mass(now - np.arange(n))
    assert Z.shape[0] == int((m >= 0.05).sum())
    np.testing.assert_allclose(y, Z @ theta, atol=1e-12)
    np.testing.assert_allclose(w, m[m >= 0.05])
    # the delay-agnostic target is the truncated cumulative outcome
    Z2, y2, _ = DelayAgnostic().design(alloc, obs, [k], now)
    np.testing.assert_allclose(y2, (alloc.features @ theta) * m, atol=1e-12)


def test_delay_agnostic_credits_the_most_recent_allocation():
    k = DelayKernel([0.5, 0.5])
    alloc = AllocationLog([0, 0], [0, 0], [0, 1], np.eye(2))
    obs = ObservationLog([0, 0, 0], [0, 1, 2], [1.0, 2.0, 3.0])
    _, y, w = DelayAgnostic().design(alloc, obs, [k], now=2)
    np.testing.assert_array_equal(y, [1.0, 5.0])
    np.testing.assert_array_equal(w, [1.0, 1.0])


def test_validation():
    with pytest.raises(ValueError, match="features must have 2 rows"):
        AllocationLog([0, 1], [0, 0], [0, 0], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="resource must lie in"):
        KernelConvolvedLS().design(
            AllocationLog([0], [3], [0], np.ones((1, 1))),
            ObservationLog([0], [0], [1.0]),
            KERNELS,
            0,
        )
    with pytest.raises(ValueError, match="attribution must be one of"):
        make_attribution("nope")


def cohort_observations(alloc, effects, now, members_at):
    """What the fair world shows: each round, per-unit rows for the round's members (0 when
    nothing is released) and one remainder row with what everyone else released."""
    full = convolve_outcomes(alloc, effects, KERNELS, now)
    units, rounds, values = [], [], []
    for t in range(now + 1):
        members = members_at(t)
        at = full.round == t
        own = dict(zip(full.unit[at].tolist(), full.value[at].tolist(), strict=True))
        units += members.tolist()
        rounds += [t] * members.size
        values += [own.get(u, 0.0) for u in members.tolist()]
        rest = sum(v for u, v in own.items() if u not in set(members.tolist()))
        units.append(-1)
        rounds.append(t)
        values.append(rest)
    return ObservationLog(units, rounds, values)


def test_remainder_rows_cover_units_no_longer_observed_and_stay_exact():
    rng = np.random.default_rng(4)
    # 60 units in 3 cohorts of 20, each cohort in the batch for 8 rounds, allocated within it
    L, size = 8, 20
    cohort_of = lambda t: (t // L) % 3  # noqa: E731
    members_at = lambda t: np.arange(cohort_of(t) * size, (cohort_of(t) + 1) * size)  # noqa: E731
    unit, rnd = [], []
    for t in range(40):
        pick = rng.choice(members_at(t), 5, replace=False)
        unit += pick.tolist()
        rnd += [t] * 5
    unit, rnd = np.array(unit), np.array(rnd)
    res = rng.integers(2, size=unit.size)
    base = allocations(rng, n_units=60, rounds=1, per_round=1)  # for the feature layout only
    X = rng.normal(size=(60, 3))
    phi = np.zeros((unit.size, base.features.shape[1]))
    for r in range(2):
        rows = res == r
        phi[rows, r * 4] = 1.0
        phi[rows, r * 4 + 1 : (r + 1) * 4] = X[unit[rows]]
    alloc = AllocationLog(unit, res, rnd, phi)
    theta = rng.normal(size=phi.shape[1])
    obs = cohort_observations(alloc, phi @ theta, 39, members_at)
    Z, y, w = KernelConvolvedLS().design(alloc, obs, KERNELS, 39)
    np.testing.assert_allclose(y, Z @ theta, atol=1e-10)  # every row is exact
    assert (w < 1).any() and np.all((w > 0) & (w <= 1))
    np.testing.assert_allclose(fit_ridge(Z, y, w, lam=1e-9).theta[0], theta, atol=1e-6)
    # without the remainder rows the former members' windows would count as zeros: biased
    keep = obs.unit >= 0
    plain = ObservationLog(obs.unit[keep], obs.round[keep], obs.value[keep])
    Zp, yp, _ = KernelConvolvedLS().design(alloc, plain, KERNELS, 39)
    assert np.abs(yp - Zp @ theta).max() > 0.1


def test_remainder_keys_and_weights_by_brute_force():
    k = DelayKernel([0.5, 0.3, 0.2])
    # units 0, 1 allocated at round 0; at round 1 only unit 0 is observed on its own
    alloc = AllocationLog([0, 1, 2], [0, 0, 0], [0, 0, 1], np.eye(3))
    obs = ObservationLog([0, 1, 0, -1, -1], [0, 0, 1, 1, 2], [1.0, 2.0, 3.0, 4.0, 5.0])
    Z, y, w = KernelConvolvedLS().design(alloc, obs, [k], 2)
    # keys: (0,0), (1,0), (0,1), (-1,1) = units 1 and 2, (-1,2) = units 0, 1 and 2
    expected = {
        (0, 0): ([0.5, 0, 0], 1.0, 1),
        (1, 0): ([0, 0.5, 0], 2.0, 1),
        (0, 1): ([0.3, 0, 0], 3.0, 1),
        (-1, 1): ([0, 0.3, 0.5], 4.0, 2),
        (-1, 2): ([0.2, 0.2, 0.3], 5.0, 3),
    }
    rows = sorted(expected, key=lambda key: (key[0] + 1) * 2**32 + key[1])
    np.testing.assert_allclose(Z, [expected[r][0] for r in rows])
    np.testing.assert_allclose(y, [expected[r][1] for r in rows])
    np.testing.assert_allclose(w, [1 / expected[r][2] for r in rows])
    with pytest.raises(ValueError, match="-1 for a remainder row"):
        ObservationLog([-2], [0], [1.0])
