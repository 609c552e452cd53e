"""Where runs execute: :func:`parallel_map` over local worker processes or Ray.

:func:`parallel_map` (used by :func:`scarce.sim.sweep` and by every capability experiment) runs its
tasks on ``"local"`` worker processes (the default) or as ``"ray"`` remote tasks (extra
``scale``), on the cluster at ``address`` or on a local one it starts. Tasks are pure
functions of explicitly seeded items, so results are identical on every backend and a retried
task gives the same answer. Code that calls :func:`parallel_map` without a ``backend``
argument (e.g. a :class:`~scarce.sim.CustomExperiment`, which is only given ``n_jobs``) picks
up the backend of the enclosing :func:`backend` context (also exported as
``scarce.sim.backend``; note that ``scarce.sim.sweep`` as an attribute is the function)::

    from scarce.sim import backend, run_experiment

    with backend("ray", address="auto"):
        run_experiment("quickstart", out="results/q")

"""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Literal

import numpy as np


class _single_threaded_blas:
    """Limit BLAS to one thread during a run: the matrices are small, runs are parallel over
    processes already, and the same thread count everywhere keeps results bitwise equal
    whatever ``n_jobs`` is."""

    def __enter__(self) -> None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            self._ctx = None
            return
        self._ctx = threadpool_limits(limits=1, user_api="blas")

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.restore_original_limits()


def default_n_jobs() -> int:
    """``min(2, number of CPUs)``."""
    return max(1, min(2, os.cpu_count() or 1))


Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")

#: the backend of the enclosing :func:`backend` context: ``(name, address)`` or None (local)
_BACKEND: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "scarce_sweep_backend", default=None
)


def check_backend(name: Any, address: Any) -> tuple[str, str | None]:
    """Validated ``(name, address)`` of a backend (see :func:`backend`)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
    if address is not None and not isinstance(address, str):
        raise TypeError(
            f"address must be a str (e.g. 'auto' or 'ray://host:10001') or None; got {address!r}"
        )
    if name == "local" and address is not None:
        raise ValueError(
            f"address is only used with backend='ray'; got address={address!r} with 'local'"
        )
    return str(name), address


@contextlib.contextmanager
def backend(name: Backend = "local", address: str | None = None) -> Iterator[None]:
    """Within this context, :func:`parallel_map` calls without their own ``backend`` argument
    (and so every sweep and experiment inside) use ``name`` and ``address``.

    Parameters
    ----------
    name:
        ``"local"`` (worker processes) or ``"ray"``.
    address:
        Ray cluster address (``"auto"``, ``"ray://host:10001"``, ...); None starts a local
        Ray cluster on first use (or uses the one this process already joined).
    """
    token = _BACKEND.set(check_backend(name, address))
    try:
        yield
    finally:
        _BACKEND.reset(token)


def current_backend() -> tuple[str, str | None]:
    """``(name, address)`` that :func:`parallel_map` uses when given no ``backend``."""
    return _BACKEND.get() or ("local", None)


def parallel_map(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: Backend | None = None,
    address: str | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` on local worker processes or Ray, in the order of ``items``.

    The building block of every sweep: ``fn`` must be a module-level (picklable) pure function
    of its item, with explicit seeds inside the item, so results do not depend on ``n_jobs``,
    on the backend or on the order in which workers finish. BLAS runs single-threaded in each
    call.

    Parameters
    ----------
    fn:
        module-level function of one item.
    items:
        picklable task descriptions.
    n_jobs:
        local worker processes; default ``min(2, cpu count)``. ``1`` runs in this process.
        With Ray it is the CPU count of the local cluster started when none is running
        (default: all CPUs); an existing cluster schedules as it likes.
    progress:
        called as ``progress(completed, total)`` after each item (and once with 0). An
        exception raised here stops the map (queued items are cancelled).
    backend:
        ``"local"`` or ``"ray"``; None uses the enclosing :func:`backend` context (default
        local).
    address:
        Ray cluster address (with ``backend="ray"``); None: the context's, else a local
        cluster. Used only to start Ray: if this process has already joined a Ray cluster,
        that one is used.
    on_result:
        called as ``on_result(index, result)`` in this process as soon as each item finishes
        (before ``progress``), e.g. to stream results to disk.
    """
    items = list(items)
    total = len(items)
    if backend is None:
        name, ctx_address = current_backend()
        address = ctx_address if address is None else address
    else:
        name = backend
    name, address = check_backend(name, address)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    ):
        raise ValueError(f"n_jobs must be an int >= 1 or None; got {n_jobs!r}")
    results: list[Any] = [None] * total

    def finished(index: int, result: Any, done: int) -> None:
        results[index] = result
        if on_result is not None:
            on_result(index, result)
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    if total == 0:
        return results
    if name == "ray":
        _ray_map(fn, items, n_jobs, address, finished)
        return results
    n_jobs = default_n_jobs() if n_jobs is None else int(n_jobs)
    if n_jobs == 1 or total <= 1:
        for done, item in enumerate(items, start=1):
            with _single_threaded_blas():
                result = fn(item)
            finished(done - 1, result, done)
        return results
    with ProcessPoolExecutor(max_workers=min(n_jobs, total), mp_context=_pool_context()) as pool:
        futures = {pool.submit(_call_single_threaded, fn, item): i for i, item in enumerate(items)}
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                finished(futures[fut], fut.result(), done)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results


def _pool_context() -> multiprocessing.context.BaseContext | None:
    """The start method of local worker processes: the platform's default (fork on Linux),
    except in a process where Ray is running. Ray's client threads hold locks and native
    handles that a forked child inherits half-made (a local map after a Ray map in one process
    hung or crashed its workers), so there the workers start from a clean forkserver."""
    ray = sys.modules.get("ray")
    is_initialized = getattr(ray, "is_initialized", None)
    if callable(is_initialized) and is_initialized():
        return multiprocessing.get_context("forkserver")
    return None


def _ray_map(
    fn: Callable[[Any], Any],
    items: list[Any],
    n_jobs: int | None,
    address: str | None,
    finished: Callable[[int, Any, int], None],
) -> None:
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "backend='ray' needs Ray: pip install 'scarce[scale]' (or pip install ray)"
        ) from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and n_jobs is not None:
            kwargs["num_cpus"] = int(n_jobs)
        ray.init(address=address, **kwargs)
    remote = ray.remote(num_cpus=1, max_retries=3)(_call_single_threaded)
    fn_ref = ray.put(fn)
    refs = [remote.remote(fn_ref, item) for item in items]
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    done = 0
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done += 1
                finished(index[ref], ray.get(ref), done)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise


def _call_single_threaded(fn: Callable[[Any], Any], item: Any) -> Any:
    with _single_threaded_blas():
        return fn(item)
