"""Reward models for the model-based estimators (DM, DR, switch-DR): cross-fitted predictions
``q_i(a)`` for every logged row and action, so that a row's prediction never saw that row."""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int
from scarce.ope.data import LoggedData, check_logged_data


def cross_fit_rewards(
    data: LoggedData,
    regressor: Any = None,
    *,
    n_folds: int = 2,
    per_action: bool = True,
    seed: SeedLike = 0,
) -> np.ndarray:
    """Cross-fitted reward predictions ``q_i(a)`` ``(n, K)`` for every row and action.

    Parameters
    ----------
    data:
        the logs.
    regressor:
        any scikit-learn regressor (cloned per fit); default ``Ridge(alpha=1.0)``.
    n_folds:
        folds (>= 2); fold ``k``'s predictions come from a model fitted on the other folds.
    per_action:
        for ``(n, d)`` contexts: one model per action fitted on that action's rows (an action
        with fewer than 2 training rows predicts the training folds' mean reward) if True,
        else one model on ``[x, one_hot(a)]``. For ``(n, K, d)`` per-action features one model
        on ``x_{i, a_i}`` is always used. With positions (ranking logs, ``(n, d)`` contexts)
        the one-hot position is appended to ``x``, and ``q_i(a)`` is the prediction for action
        ``a`` at row ``i``'s position.
    seed:
        seed of the fold assignment.
    """
    from sklearn.base import clone
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    data = check_logged_data(data)
    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    if n_folds > data.n:
        raise ValueError(f"n_folds must be <= the number of rows {data.n}; got {n_folds}")
    base = Ridge(alpha=1.0) if regressor is None else regressor
    if not hasattr(base, "fit") or not hasattr(base, "predict"):
        raise TypeError(f"regressor must have fit and predict; got {type(base).__name__}")
    n, K = data.n, data.n_actions
    X, a, r = data.contexts, data.actions, data.rewards
    if data.positions is not None and X.ndim == 2 and data.n_positions > 1:
        # rewards of ranking logs depend on the slot: the model sees the row's position
        X = np.hstack([X, np.eye(data.n_positions)[data.positions]])
    rows = np.arange(n)
    q = np.empty((n, K))
    rs = int(as_generator(seed).integers(2**31 - 1))
    for train, test in KFold(n_folds, shuffle=True, random_state=rs).split(rows):
        if X.ndim == 3:
            model = clone(base).fit(X[train, a[train]], r[train])
            q[test] = model.predict(X[test].reshape(-1, X.shape[2])).reshape(len(test), K)
        elif per_action:
            fallback = float(r[train].mean())
            for k in range(K):
                mine = train[a[train] == k]
                if mine.size < 2:
                    q[test, k] = fallback if mine.size == 0 else float(r[mine].mean())
                    continue
                q[test, k] = clone(base).fit(X[mine], r[mine]).predict(X[test])
        else:
            eye = np.eye(K)
            model = clone(base).fit(np.hstack([X[train], eye[a[train]]]), r[train])
            Xt = np.repeat(X[test], K, axis=0)
            At = np.tile(eye, (len(test), 1))
            q[test] = model.predict(np.hstack([Xt, At])).reshape(len(test), K)
    return q


def reward_table(
    data: LoggedData, reward_model: Any, n_folds: int, per_action: bool, seed: SeedLike
) -> np.ndarray:
    """``(n, K)`` reward predictions: ``reward_model`` itself when it is such an array (checked),
    else :func:`cross_fit_rewards` with ``reward_model`` as the regressor (None: ridge)."""
    if isinstance(reward_model, np.ndarray):
        q = np.asarray(reward_model, dtype=np.float64)
        if q.shape != (data.n, data.n_actions):
            raise ValueError(
                f"reward_model given as predictions must have shape ({data.n}, "
                f"{data.n_actions}); got {q.shape}"
            )
        if not np.isfinite(q).all():
            raise ValueError("reward_model predictions must be finite")
        return q
    return cross_fit_rewards(data, reward_model, n_folds=n_folds, per_action=per_action, seed=seed)
