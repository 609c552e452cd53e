"""The libraries :mod:`bench_core` measures, behind one small interface (:class:`Runner`):
scarce, a plain NumPy reference, Vowpal Wabbit and MABWiser."""

from __future__ import annotations

import importlib
import importlib.metadata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

NOISE_SD = 0.1


@dataclass(frozen=True)
class Settings:
    """Exploration and ridge settings, shared by every library that has them.

    ``alpha`` is LinUCB's width multiplier (MABWiser ``LinUCB(alpha=...)``), ``v`` LinTS's
    posterior scale (MABWiser ``LinTS(alpha=...)``), ``lam`` the ridge penalty of both
    (MABWiser ``l2_lambda``). ``alpha`` and ``lam`` are both libraries' defaults; ``v`` is the
    reward noise sd, which makes ``N(theta_hat, v^2 A^-1)`` the exact Bayesian posterior (both
    libraries default to 1.0, ten times the noise, which explores almost uniformly here).
    ``lam`` = 1 also sidesteps MABWiser initialising ``A^-1`` to ``lam * I`` rather than
    ``I / lam`` before an arm's first update.
    """

    alpha: float = 1.0
    v: float = NOISE_SD
    lam: float = 1.0


class Runner(ABC):
    """One library playing one algorithm on one problem size.

    ``decide`` and ``update`` take a single context as a ``(1, d)`` row; ``decide_batch``
    takes ``(n, d)``. ``reset(seed)`` starts a fresh, untrained learner seeded with ``seed``.
    """

    #: short library name used in the table
    label: ClassVar[str]
    #: importable module that must be present for this runner to work
    module: ClassVar[str]
    #: distribution name for the version footnote
    distribution: ClassVar[str]
    #: at most this many contexts go to ``decide_batch`` (None: the whole batch)
    batch_limit: ClassVar[int | None] = None

    def __init__(self, algorithm: str, d: int, K: int, settings: Settings) -> None:
        self.algorithm = algorithm
        self.d = d
        self.K = K
        self.settings = settings

    @classmethod
    def available(cls) -> bool:
        """Whether the library can be imported."""
        try:
            importlib.import_module(cls.module)
        except Exception:  # noqa: BLE001 - ImportError, or a broken install raising anything
            return False
        return True

    @classmethod
    def version(cls) -> str:
        """The installed distribution's version, or "?"."""
        try:
            return importlib.metadata.version(cls.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def description(self) -> str:
        """The exact configuration, for the table footnote."""
        return ""

    @abstractmethod
    def reset(self, seed: int) -> None: ...

    @abstractmethod
    def decide(self, x: np.ndarray) -> int: ...

    @abstractmethod
    def update(self, x: np.ndarray, action: int, reward: float) -> None: ...

    @abstractmethod
    def decide_batch(self, X: np.ndarray) -> np.ndarray: ...


class ScarceRunner(Runner):
    """scarce's ``LinUCB`` / ``LinTS`` through the public ``decide`` / ``update`` API."""

    label = "scarce"
    module = "scarce"
    distribution = "scarce"

    def _make(self, seed: int) -> Any:
        from scarce.policies import LinTS, LinUCB

        s = self.settings
        if self.algorithm == "LinUCB":
            return LinUCB(n_actions=self.K, n_features=self.d, alpha=s.alpha, lam=s.lam, seed=seed)
        return LinTS(n_actions=self.K, n_features=self.d, v=s.v, lam=s.lam, seed=seed)

    def description(self) -> str:
        return repr(self._make(0))

    def reset(self, seed: int) -> None:
        self.policy = self._make(seed)

    def decide(self, x: np.ndarray) -> int:
        return int(self.policy.decide(x).actions[0])

    def update(self, x: np.ndarray, action: int, reward: float) -> None:
        self.policy.update(x, [action], [reward])

    def decide_batch(self, X: np.ndarray) -> np.ndarray:
        return self.policy.decide(X).actions


class ScarceNumbaRunner(ScarceRunner):
    """scarce's ``LinUCB`` / ``LinTS`` with ``backend="numba"`` (the compiled one-case
    kernels; batches are the NumPy backend's)."""

    label = "scarce+numba"
    module = "numba"
    distribution = "numba"

    def _make(self, seed: int) -> Any:
        policy = super()._make(seed)
        policy.backend = "numba"
        return policy


class NumpyRunner(Runner):
    """The NumPy reference: what a user would write by hand for disjoint LinUCB / LinTS.

    Online, it keeps each action's ``A^{-1}`` and estimate ``theta = A^{-1} b``, decides
    from ``Z = A^{-1} x`` for all actions at once (``x^T theta + alpha sqrt(x^T Z)``, or the
    Thompson score ``x^T theta + v sqrt(x^T Z) z``), then updates only the chosen action by
    Sherman-Morrison with ``u = Z[a]`` kept from the decision, and recomputes its estimate.
    No input checks, no refactorisation, no decision object. Batched, the widths take one
    GEMM per action (``(X A_k^{-1}) * X`` summed over features).
    """

    label = "numpy"
    module = "numpy"
    distribution = "numpy"

    def description(self) -> str:
        s = self.settings
        if self.algorithm == "LinUCB":
            return f"theta-caching NumPy LinUCB (alpha={s.alpha}, lam={s.lam})"
        return f"theta-caching NumPy LinTS (v={s.v}, lam={s.lam})"

    def reset(self, seed: int) -> None:
        K, d, lam = self.K, self.d, self.settings.lam
        self.A_inv = np.broadcast_to(np.eye(d) / lam, (K, d, d)).copy()
        self.b = np.zeros((K, d))
        self.theta = np.zeros((K, d))
        self.rng = np.random.default_rng(seed)
        self.width = self.settings.alpha if self.algorithm == "LinUCB" else self.settings.v
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def decide(self, x: np.ndarray) -> int:
        x0 = x[0]
        Z = self.A_inv @ x0
        # vecdot, not the GEMV Z @ x0: it sums every row alike, so untried (identical) actions
        # tie exactly and the argmax takes the lowest id, as scarce does (same speed)
        spread = self.width * np.sqrt(np.maximum(np.vecdot(Z, x0), 0.0))
        if self.algorithm == "LinTS":
            spread *= self.rng.standard_normal(self.K)
        self._last = (x, Z)
        return int(np.argmax(np.vecdot(self.theta, x0) + spread))

    def update(self, x: np.ndarray, action: int, reward: float) -> None:
        x0 = x[0]
        if self._last is not None and self._last[0] is x:
            u = self._last[1][action]
        else:
            u = self.A_inv[action] @ x0
        self.A_inv[action] -= np.outer(u, u) / (1.0 + x0 @ u)
        self.b[action] += reward * x0
        self.theta[action] = self.A_inv[action] @ self.b[action]

    def decide_batch(self, X: np.ndarray) -> np.ndarray:
        var = np.empty((X.shape[0], self.K))
        for k in range(self.K):  # one GEMM per action for the widths
            var[:, k] = np.einsum("nd,nd->n", X @ self.A_inv[k], X)
        spread = self.width * np.sqrt(np.maximum(var, 0.0))
        if self.algorithm == "LinTS":
            spread *= self.rng.standard_normal(var.shape)
        return np.argmax(X @ self.theta.T + spread, axis=1)


class MABWiserRunner(Runner):
    """MABWiser's ``LearningPolicy.LinUCB`` / ``LinTS`` (``predict`` + ``partial_fit``).

    The model is initialised with an empty ``fit`` so the first rounds go through the same
    ``predict`` / ``partial_fit`` path as all the others.
    """

    label = "MABWiser"
    module = "mabwiser"
    distribution = "mabwiser"

    def _learning_policy(self) -> Any:
        from mabwiser.mab import LearningPolicy

        s = self.settings
        if self.algorithm == "LinUCB":
            return LearningPolicy.LinUCB(alpha=s.alpha, l2_lambda=s.lam)
        return LearningPolicy.LinTS(alpha=s.v, l2_lambda=s.lam)

    def description(self) -> str:
        return f"MAB(arms, {self._learning_policy()!r}, seed=seed)"

    def reset(self, seed: int) -> None:
        from mabwiser.mab import MAB

        self.mab = MAB(list(range(self.K)), self._learning_policy(), seed=seed)
        self.mab.fit(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, self.d)))

    def decide(self, x: np.ndarray) -> int:
        return int(self.mab.predict(x))

    def update(self, x: np.ndarray, action: int, reward: float) -> None:
        self.mab.partial_fit([action], [reward], x)

    def decide_batch(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.mab.predict(X))


class VWRunner(Runner):
    """Vowpal Wabbit ``--cb_explore_adf`` through its Python text interface.

    Each round is one multi-line example: a ``shared`` line with the context in namespace
    ``s`` and one line per action carrying only its id in namespace ``a``; ``-q sa`` crosses
    them, giving every action its own linear model, as in disjoint LinUCB / LinTS. VW returns a
    probability mass function; the action is drawn from it with the runner's own generator
    and learnt with cost ``-reward`` and that probability. Building the text is part of the
    cost of using VW from Python and is inside the timings. VW has no batch API, so
    ``decide_batch`` is a loop of ``predict`` calls (on at most ``batch_limit`` contexts).
    """

    label = "VW"
    module = "vowpalwabbit"
    distribution = "vowpalwabbit"
    batch_limit = 2_000

    #: exploration per algorithm row: VW has neither LinUCB nor LinTS. RegCB-opt (optimistic
    #: regression confidence bounds) is its closest UCB analogue; SquareCB (inverse-gap
    #: weighting) stands in for the randomised one. RegCB clips its cost bounds to
    #: [cb_min_cost, cb_max_cost], by default [0, 1]; the costs here are -reward, nominally in
    #: [-1, 1] (unit-norm theta, E|x|^2 = 1), and with the default range RegCB-opt does no
    #: better than choosing at random. SquareCB uses the range only with --elim.
    EXPLORATION: ClassVar[dict[str, str]] = {
        "LinUCB": "--regcbopt --cb_min_cost -1 --cb_max_cost 1",
        "LinTS": "--squarecb",
    }

    def arguments(self, seed: int) -> str:
        explore = self.EXPLORATION[self.algorithm]
        return f"--cb_explore_adf --cb_type mtr {explore} -q sa --quiet --random_seed {seed}"

    def description(self) -> str:
        return self.arguments(0).replace("--random_seed 0", "--random_seed SEED")

    def reset(self, seed: int) -> None:
        from vowpalwabbit import Workspace

        if getattr(self, "vw", None) is not None:
            self.vw.finish()
        self.vw = Workspace(self.arguments(seed))
        self.rng = np.random.default_rng(seed)
        self.action_lines = [f"|a a{k}" for k in range(self.K)]
        self.shared_format = "shared |s " + " ".join(f"{i}:%.6g" for i in range(self.d))
        self._last: tuple[np.ndarray, str, np.ndarray] | None = None

    def _shared_line(self, x: np.ndarray) -> str:
        return self.shared_format % tuple(x[0].tolist())

    def _sample(self, pmf: np.ndarray) -> int:
        cdf = np.cumsum(pmf)
        return min(int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right")), self.K - 1)

    def decide(self, x: np.ndarray) -> int:
        shared = self._shared_line(x)
        pmf = np.asarray(self.vw.predict([shared, *self.action_lines]), dtype=float)
        self._last = (x, shared, pmf)
        return self._sample(pmf)

    def update(self, x: np.ndarray, action: int, reward: float) -> None:
        if self._last is not None and self._last[0] is x:  # reuse the text built by decide
            _, shared, pmf = self._last
        else:
            shared = self._shared_line(x)
            pmf = np.asarray(self.vw.predict([shared, *self.action_lines]), dtype=float)
        lines = [shared, *self.action_lines]
        lines[1 + action] = f"0:{-reward:.6g}:{pmf[action]:.6g} {self.action_lines[action]}"
        self.vw.learn(lines)

    def decide_batch(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.decide(X[i : i + 1]) for i in range(X.shape[0])])


RUNNERS: tuple[type[Runner], ...] = (
    ScarceRunner,
    ScarceNumbaRunner,
    NumpyRunner,
    VWRunner,
    MABWiserRunner,
)
