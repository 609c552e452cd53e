"""Supervised-to-bandit conversion: a multiclass data set becomes a contextual bandit.

Each class is an action; choosing the true label of a case earns 1, any other action 0. This is
the standard way to build a bandit problem with an exact oracle from real data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_finite
from scarce.envs.base import Environment


class SupervisedEnv(Environment):
    """A multiclass data set as a contextual bandit with 0/1 rewards.

    * **Actions** are the classes: the ``K`` distinct labels of ``y``, sorted, are mapped to
      ``0 .. K-1`` (the original labels are kept in :attr:`classes`).
    * **Reward** is 1.0 for the case's true label and 0.0 for every other action, without noise;
      :meth:`expected_rewards` is the one-hot encoding of the label (an exact oracle).
    * **Contexts** are rows of ``X`` drawn uniformly at random *with replacement*, so the
      horizon is not limited by the size of the data set and every draw is independent.
    * **Features**: with ``standardize=True`` each column is z-scored with the mean and
      (population) standard deviation of the whole data set; constant columns become 0. A
      constant 1.0 bias column is then appended, so ``n_features = X.shape[1] + 1``.

    A context alone does not identify its label (rows may repeat or coincide), so
    :meth:`contexts` remembers the labels of the batch it returned, and :meth:`outcomes`,
    :meth:`full_outcomes` and :meth:`expected_rewards` score **that most recent batch**.
    Passing any other contexts raises ``ValueError``.

    Parameters
    ----------
    X:
        Features, ``(N, d)`` finite numbers, one row per example.
    y:
        Labels, ``(N,)``, of any sortable type (ints, strings); at least 2 distinct values.
    name:
        Name of the environment (used in traces and tables).
    standardize:
        Whether to z-score the columns of ``X`` (see above).
    seed:
        Seed or generator for sampling rows when :meth:`contexts` is given no ``rng``.

    Attributes
    ----------
    features:
        ``(N, d + 1)`` float64, the processed feature table (standardised, with bias column).
    labels:
        ``(N,)`` int64 action ids of the examples, in ``0 .. K-1``.
    classes:
        ``(K,)`` the original label values; ``classes[a]`` is the label of action ``a``.
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        name: str = "supervised",
        standardize: bool = True,
        seed: SeedLike = None,
    ) -> None:
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric, could not convert: {exc}") from None
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-D (n_examples, n_features); got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"X must have at least one row and one column; got shape {arr.shape}")
        check_finite(arr, "X")
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != arr.shape[0]:
            raise ValueError(
                f"y must have shape ({arr.shape[0]},) to match X's {arr.shape[0]} rows; "
                f"got {labels.shape}"
            )
        try:
            classes, codes = np.unique(labels, return_inverse=True)
        except TypeError as exc:
            raise ValueError(f"y labels must be sortable values of one type: {exc}") from None
        if classes.shape[0] < 2:
            raise ValueError(f"y must contain at least 2 distinct classes; got {classes.shape[0]}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; got {name!r}")
        if not isinstance(standardize, (bool, np.bool_)):
            raise ValueError(f"standardize must be a bool; got {standardize!r}")  # noqa: TRY004
        super().__init__(seed)

        self.name = name
        self.standardize = bool(standardize)
        self.classes: np.ndarray = classes
        self.labels: np.ndarray = codes.reshape(-1).astype(np.int64)
        self.n_actions = int(classes.shape[0])
        self.n_features = int(arr.shape[1]) + 1
        self.n_examples = int(arr.shape[0])

        if self.standardize:
            mean = arr.mean(axis=0)
            std = arr.std(axis=0)
            constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
            feats = np.where(constant, 0.0, (arr - mean) / np.where(constant, 1.0, std))
        else:
            feats = arr.copy()
        self.features: np.ndarray = np.hstack([feats, np.ones((arr.shape[0], 1))])
        self._last_X: np.ndarray | None = None
        self._last_labels: np.ndarray | None = None

    @property
    def last_labels(self) -> np.ndarray | None:
        """``(n,)`` action ids of the true labels of the most recent :meth:`contexts` batch."""
        return None if self._last_labels is None else self._last_labels.copy()

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(0, self.n_examples, size=n)
        X = self.features[idx]
        self._last_X = X
        self._last_labels = self.labels[idx]
        # hand out a copy so that a caller modifying its batch cannot change what is scored
        return X.copy()

    def _batch_labels(self, X: Any) -> np.ndarray:
        """Labels of the most recent batch, after checking that ``X`` is that batch."""
        if self._last_X is None or self._last_labels is None:
            raise ValueError(
                f"{self.name}: call contexts(n) first; outcomes and expected rewards refer to "
                "the most recent contexts batch"
            )
        arr = check_contexts(X, self.n_features)
        if arr.ndim != 2:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {arr.shape}")
        n_last = self._last_X.shape[0]
        if arr.shape[0] != n_last:
            raise ValueError(
                f"{self.name}: X has {arr.shape[0]} rows but the most recent contexts batch has "
                f"{n_last}; a supervised environment can only score the batch it last returned"
            )
        if not np.array_equal(arr, self._last_X):
            raise ValueError(
                f"{self.name}: X differs from the most recent contexts batch; a supervised "
                "environment can only score the batch it last returned"
            )
        return self._last_labels

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """Exact expected rewards of the most recent :meth:`contexts` batch.

        Parameters
        ----------
        X:
            ``(n, d + 1)`` the contexts last returned by :meth:`contexts`.

        Returns
        -------
        ``(n, K)`` float64 one-hot encoding of each case's true label.
        """
        labels = self._batch_labels(X)
        out = np.zeros((labels.shape[0], self.n_actions))
        out[np.arange(labels.shape[0]), labels] = 1.0
        return out

    def outcomes(
        self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator | None = None
    ) -> Outcome:
        """Rewards ``(n,)`` (1.0 for the true label, else 0.0) of ``actions`` ``(n,)`` on the
        most recent :meth:`contexts` batch ``X``. Deterministic: ``rng`` is not used."""
        return super().outcomes(X, actions, rng)

    def full_outcomes(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, K)`` rewards of every action on the most recent :meth:`contexts` batch ``X``
        (the one-hot label). Deterministic: ``rng`` is not used."""
        return super().full_outcomes(X, rng)

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # rewards are deterministic given the label: no draw from rng
        return self.expected_rewards(X)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["n_examples"] = self.n_examples
        return out
