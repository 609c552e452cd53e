"""The contract every policy honours, as plain functions (River's ``check_estimator`` habit).

The test suite applies :func:`policy_checks` to every registered policy
(:func:`scarce.policies.get_policies`) and both context layouts; a new policy, in the library
or outside it, is checked the same way::

    from scarce.checks import check_policy
    check_policy(MyPolicy)                     # raises AssertionError on the first violation

Each check takes the policy class and, where the layout matters, ``layout``
(``"shared_context"`` for ``(n, d)`` contexts or ``"action_features"`` for ``(n, K, d)``; only
the layouts a class declares in its ``layouts`` tag are checked). How a class is built and fed
is the class's own business, declared River-style on the class (see
:class:`scarce.core.policy.Policy`): ``cls(n_actions=4, n_features=3, seed=..., **params)`` for
each ``params`` of ``cls._unit_test_params()``, contexts from ``cls._unit_test_contexts`` and
``update`` keywords (rewards, costs, ``info``...) from ``cls._unit_test_feedback``. Tolerances
come from declared tags (``probability_method``, ``deterministic``), never from class names.
Checks raise ``AssertionError`` with a message; they need neither pytest nor a writable
working directory. The two save/load checks need a class that :func:`scarce.load` will
import: it only loads classes from the ``scarce`` package.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

K, D = 4, 3
LAYOUTS = ("shared_context", "action_features")
#: atol of reported against computed probabilities, by the ``probability_method`` tag
PROBABILITY_TOLERANCE = {"exact": 1e-6, "quadrature": 1e-4, "monte_carlo": 0.06}


def _params(cls: type, seed: int | None = 0, config: int = 0) -> dict[str, Any]:
    """The constructor keywords of configuration ``config`` of ``cls._unit_test_params()``."""
    extra = cls._unit_test_params()[config]
    return {"n_actions": K, "n_features": D, "seed": seed, **extra}


def _k(cls: type) -> int:
    """Number of actions the checks build ``cls`` with (``K`` unless its unit-test params say)."""
    return int(_params(cls)["n_actions"])


def _make(cls: type, seed: int | None = 0, config: int = 0, **override: Any) -> Any:
    return cls(**{**_params(cls, seed, config), **override})


def _contexts(cls: type, rng: np.random.Generator, n: int, layout: str, config: int = 0) -> Any:
    return cls._unit_test_contexts(rng, n, layout, _params(cls, config=config))


def _feedback(cls: type, rng: np.random.Generator, X: Any, decision: Any, config: int = 0) -> dict:
    return cls._unit_test_feedback(rng, X, decision, _params(cls, config=config))


def _play(policy: Any, rng: np.random.Generator, layout: str, rounds: int = 6, n: int = 3) -> list:
    """A fixed interaction script; returns the decisions made."""
    cls = type(policy)
    out = []
    for _ in range(rounds):
        X = _contexts(cls, rng, n, layout)
        d = policy.decide(X)
        policy.update(X, **_feedback(cls, rng, X, d))
        out.append(d)
    return out


def _raises(
    exc: type[BaseException], pattern: str, fn: Callable[..., Any], *args: Any, **kw: Any
) -> None:
    try:
        fn(*args, **kw)
    except exc as err:
        if not re.search(pattern, str(err)):
            raise AssertionError(
                f"{exc.__name__} raised, but its message {str(err)!r} does not match {pattern!r}"
            ) from err
        return
    raise AssertionError(f"expected {exc.__name__} matching {pattern!r}; nothing was raised")


def _same_decisions(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.scores, b.scores)


def check_same_seed_same_run(cls: type, layout: str) -> None:
    """Two policies with the same seed make identical decisions on the same script, for every
    configuration of ``_unit_test_params``."""
    for config in range(len(cls._unit_test_params())):
        a = _play(_make(cls, seed=11, config=config), np.random.default_rng(0), layout)
        b = _play(_make(cls, seed=11, config=config), np.random.default_rng(0), layout)
        for da, db in zip(a, b, strict=True):
            _same_decisions(da, db)


def check_save_load_gives_same_next_decisions(cls: type, layout: str) -> None:
    """``save`` then ``scarce.load`` continues exactly (decisions, probabilities, scores)."""
    import scarce

    rng = np.random.default_rng(1)
    policy = _make(cls, seed=5)
    _play(policy, rng, layout)
    with tempfile.TemporaryDirectory() as tmp:
        policy.save(Path(tmp) / "p")
        loaded = scarce.load(Path(tmp) / "p")
    assert type(loaded) is cls, f"loaded a {type(loaded).__name__}, saved a {cls.__name__}"
    assert loaded.get_params() == policy.get_params()
    for _ in range(3):
        X = _contexts(cls, rng, 4, layout)
        d1, d2 = policy.decide(X), loaded.decide(X)
        _same_decisions(d1, d2)
        feedback = _feedback(cls, rng, X, d1)
        policy.update(X, **feedback)
        loaded.update(X, **feedback)


def check_save_load_before_first_use(cls: type) -> None:
    """A policy saved before any call loads and decides like the original."""
    import scarce

    policy = _make(cls, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        policy.save(Path(tmp) / "fresh")
        loaded = scarce.load(Path(tmp) / "fresh")
    X = _contexts(cls, np.random.default_rng(0), 2, cls.layouts[0])
    np.testing.assert_array_equal(policy.decide(X).actions, loaded.decide(X).actions)


def check_inputs_not_mutated(cls: type, layout: str) -> None:
    """``decide`` and ``update`` leave the caller's arrays untouched."""
    rng = np.random.default_rng(2)
    policy = _make(cls)
    X = _contexts(cls, rng, 5, layout)
    discrete = cls.action_type in PER_CASE_ACTION_TYPES
    eligible = np.ones((5, _k(cls)), dtype=bool)
    eligible[:, 0] = False
    X0, e0 = X.copy(), eligible.copy()
    d = policy.decide(X, eligible=eligible if discrete else None)
    feedback = _feedback(cls, rng, X, d)
    before = {k: _copy(v) for k, v in feedback.items()}
    policy.update(X, **feedback)
    np.testing.assert_array_equal(X0, X)
    np.testing.assert_array_equal(e0, eligible)
    for key, value in before.items():
        _assert_same(value, feedback[key], key)


def check_bad_inputs_rejected_with_argument_named(cls: type, layout: str) -> None:
    """Wrong shapes, NaN, unknown actions, impossible eligibility and unknown keywords raise
    errors that name the argument."""
    rng = np.random.default_rng(3)
    policy = _make(cls)
    K = _k(cls)
    X = _contexts(cls, rng, 3, layout)
    wrong = np.concatenate([X, X[..., :1]], axis=-1)  # one feature too many
    _raises(ValueError, "X", policy.decide, wrong)
    Xnan = X.copy()
    Xnan[0, ...] = np.nan
    _raises(ValueError, "X.*NaN", policy.decide, Xnan)
    _raises(ValueError, "eligible", policy.decide, X, eligible=np.zeros((3, K), dtype=bool))
    _raises(ValueError, "eligible", policy.decide, X, eligible=np.ones((2, K), dtype=bool))
    d = policy.decide(X)
    good = _feedback(cls, rng, X, d)
    good.pop("info", None)
    rewards = good.pop("rewards")
    good.pop("actions")
    a = d.actions
    _raises(ValueError, "actions", policy.update, X, np.array([0, 1, K]), rewards, **good)
    _raises(ValueError, "actions", policy.update, X, np.array([0.5, 1, 2]), rewards, **good)
    _raises(ValueError, "rewards", policy.update, X, a, rewards[:2], **good)
    bad = np.array(rewards, dtype=float)
    bad[1] = np.inf
    _raises(ValueError, "rewards", policy.update, X, a, bad, **good)
    full_shape = (3, K + 1) if np.ndim(rewards) == 1 else (3, K + 1, np.shape(rewards)[1])
    _raises(ValueError, "full_rewards", policy.update, X, full_rewards=np.zeros(full_shape))
    _raises(
        TypeError,
        "unexpected keyword",
        policy.update,
        X,
        a,
        rewards,
        not_a_feedback_keyword=np.zeros(3),
        **good,
    )
    _raises(TypeError, "unexpected keyword", policy.decide, X, not_a_context_keyword=1)
    if len(cls.layouts) > 1:
        other_layout = next(lay for lay in cls.layouts if lay != layout)
        other = _contexts(cls, rng, 3, other_layout)
        _raises(ValueError, "X must have shape", policy.decide, other)


def check_bad_constructor_arguments_rejected_on_first_use(cls: type) -> None:
    """Constructor arguments are stored as given and validated on first use."""
    policy = _make(cls, n_actions=0)
    X = _contexts(cls, np.random.default_rng(0), 1, "shared_context")
    _raises(ValueError, "n_actions", policy.decide, X)


def check_batched_decide_equals_one_by_one_when_deterministic(cls: type, layout: str) -> None:
    """A deterministic policy decides a batch exactly as it decides its cases one by one."""
    policy = _make(cls)
    rng = np.random.default_rng(4)
    _play(policy, rng, layout)
    assert policy.deterministic, f"{cls.__name__} is randomised: this check does not apply"
    X = _contexts(cls, rng, 7, layout)
    batch = policy.decide(X)
    single = np.concatenate([policy.decide(X[i : i + 1]).actions for i in range(7)])
    np.testing.assert_array_equal(batch.actions, single)


def check_probabilities_consistent_and_eligibility_respected(cls: type, layout: str) -> None:
    """Reported probabilities are in (0, 1], agree with ``action_probabilities`` (which sums to
    one and is zero on ineligible actions), and ineligible actions are never chosen."""
    policy = _make(cls, seed=8)
    K = _k(cls)
    rng = np.random.default_rng(5)
    _play(policy, rng, layout)
    X = _contexts(cls, rng, 6, layout)
    eligible = rng.random((6, K)) < 0.6
    eligible[np.arange(6), rng.integers(0, K, 6)] = True
    d = policy.decide(X, eligible=eligible)
    assert d.actions.dtype.kind == "i" and d.actions.shape == (6,)
    assert d.scores.shape == (6, K)
    assert np.all(eligible[np.arange(6), d.actions]), "an ineligible action was chosen"
    assert np.all((d.probabilities > 0) & (d.probabilities <= 1))
    probs = policy.action_probabilities(X, eligible=eligible)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert np.all(probs[~eligible] == 0)
    tol = PROBABILITY_TOLERANCE[_probability_method(policy, layout)]
    np.testing.assert_allclose(probs[np.arange(6), d.actions], d.probabilities, atol=tol)


def check_choice_frequencies_match_reported_probabilities(cls: type) -> None:
    """Deciding the same case many times (no learning) reproduces ``action_probabilities``."""
    policy = _make(cls, seed=9)
    K = _k(cls)
    rng = np.random.default_rng(6)
    layout = cls.layouts[0]
    _play(policy, rng, layout, rounds=3)
    x = _contexts(cls, rng, 1, layout)
    expected = policy.action_probabilities(x)[0]
    X = np.repeat(x, 4000, axis=0)
    if not np.any((expected > 0) & (expected < 1)):  # deterministic here: one draw will do
        X = X[:50]
    freq = np.bincount(policy.decide(X).actions, minlength=K) / X.shape[0]
    np.testing.assert_allclose(freq, expected, atol=0.03)


def check_get_params_round_trip(cls: type) -> None:
    """``cls(**policy.get_params())`` has the same parameters, including ``seed``."""
    policy = _make(cls, seed=4)
    clone = cls(**policy.get_params())
    assert clone.get_params() == policy.get_params()
    assert "n_actions" in policy.get_params() and "seed" in policy.get_params()


def check_full_information_feedback_learns_every_action(cls: type, layout: str) -> None:
    """``update(X, full_rewards=...)`` is accepted; per-action models see every case."""
    policy = _make(cls)
    K = _k(cls)
    rng = np.random.default_rng(7)
    X = _contexts(cls, rng, 5, layout)
    d = policy.decide(X)
    feedback = _feedback(cls, rng, X, d)
    rewards = np.asarray(feedback.pop("rewards"))
    feedback.pop("actions")
    feedback.pop("info", None)
    full = rng.random((5, K, *rewards.shape[1:]))
    policy.update(X, full_rewards=full, **feedback)
    model = getattr(policy, "model_", None)
    if model is not None and layout == "shared_context" and hasattr(model, "n_obs"):
        assert np.all(np.asarray(model.n_obs) == 5)


#: checks that depend on the context layout
LAYOUT_CHECKS: tuple[Callable[[type, str], None], ...] = (
    check_same_seed_same_run,
    check_save_load_gives_same_next_decisions,
    check_inputs_not_mutated,
    check_bad_inputs_rejected_with_argument_named,
    check_batched_decide_equals_one_by_one_when_deterministic,
    check_probabilities_consistent_and_eligibility_respected,
    check_full_information_feedback_learns_every_action,
)
#: checks run once per class
CLASS_CHECKS: tuple[Callable[[type], None], ...] = (
    check_save_load_before_first_use,
    check_bad_constructor_arguments_rejected_on_first_use,
    check_choice_frequencies_match_reported_probabilities,
    check_get_params_round_trip,
)


#: variants that choose one action id per case (an ``(n, K)`` eligibility mask, choice
#: probabilities): ``"discrete"`` and ``"allocation"``
PER_CASE_ACTION_TYPES = ("discrete", "allocation")
#: checks that need one action id per case; other variants (``"levels"``) get the rest
PER_CASE_ONLY: tuple[Callable[..., None], ...] = (
    check_probabilities_consistent_and_eligibility_respected,
    check_choice_frequencies_match_reported_probabilities,
    check_full_information_feedback_learns_every_action,
)


def applies(check: Callable[..., None], cls: type) -> bool:
    """Whether ``check`` applies to ``cls``, by its declared tags: the batch check only to
    deterministic policies, the :data:`PER_CASE_ONLY` checks only to variants with one action
    per case, the full-information check only to policies that learn from full-information
    feedback (tag ``full_information``)."""
    if check in PER_CASE_ONLY and cls.action_type not in PER_CASE_ACTION_TYPES:
        return False
    if check is check_batched_decide_equals_one_by_one_when_deterministic:
        return bool(_make(cls).deterministic)
    if check is check_full_information_feedback_learns_every_action:
        return bool(getattr(cls, "full_information", True))
    return True


def layouts(cls: type, wanted: tuple[str, ...] = LAYOUTS) -> tuple[str, ...]:
    """The layouts of ``wanted`` that ``cls`` declares (its ``layouts`` tag)."""
    return tuple(lay for lay in wanted if lay in getattr(cls, "layouts", LAYOUTS))


def policy_checks(
    cls: type, layouts_: tuple[str, ...] = LAYOUTS
) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, check)`` pairs, each check a no-argument callable, for ``cls`` on the layouts
    of ``layouts_`` it declares."""
    for layout in layouts(cls, layouts_):
        for check in (c for c in LAYOUT_CHECKS if applies(c, cls)):
            yield f"{check.__name__}[{layout}]", (lambda c=check, lay=layout: c(cls, lay))
    for check in (c for c in CLASS_CHECKS if applies(c, cls)):
        yield check.__name__, (lambda c=check: c(cls))


def check_policy(cls: type, layouts_: tuple[str, ...] = LAYOUTS) -> None:
    """Run every check on ``cls``; raises ``AssertionError`` naming the first that fails."""
    for name, check in policy_checks(cls, layouts_):
        try:
            check()
        except AssertionError as err:
            raise AssertionError(f"{cls.__name__}: {name} failed: {err}") from err


def _probability_method(policy: Any, layout: str) -> str:
    """The ``probability_method`` tag: a string, or a dict by layout."""
    method = getattr(policy, "probability_method", "exact")
    return method[layout] if isinstance(method, dict) else method


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: np.array(v, copy=True) for k, v in value.items()}
    return np.array(value, copy=True)


def _assert_same(before: Any, after: Any, name: str) -> None:
    if isinstance(before, dict):
        assert before.keys() == after.keys(), f"update changed the keys of {name}"
        for k in before:
            np.testing.assert_array_equal(before[k], after[k], err_msg=f"{name}[{k!r}] mutated")
    else:
        np.testing.assert_array_equal(before, np.asarray(after), err_msg=f"{name} mutated")
