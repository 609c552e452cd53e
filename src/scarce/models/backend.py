"""Array backends for batched scoring of many actions: ``queries @ features.T`` and its top-k.

Two backends compute the same thing:

* ``"numpy"``: BLAS on the host (float32 or float64, as the features are stored);
* ``"torch"``: the same products on torch tensors, on ``device="cpu"`` or ``"cuda"`` (torch is
  the ``neural`` extra; imported only when this backend is asked for).

Scores of a ``(K, m)`` matrix against ``n`` queries are formed in chunks of actions so that a
million-action catalog never needs an ``(n, K)`` float64 block at once; only the running top-k
is kept. Results equal the NumPy path to float tolerance (tests check it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = ("numpy", "torch")

# scores per block (n cases x chunk actions): bounds the temporary block to ~16 MB in float32
_BLOCK = 1 << 22


def check_backend(name: Any, device: Any) -> None:
    """Validate a ``(backend, device)`` pair (errors name the argument)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    if not isinstance(device, str) or not device:
        raise ValueError(
            f"device must be a torch device string such as 'cpu' or 'cuda'; got {device!r}"
        )
    if name == "numpy" and device != "cpu":
        raise ValueError(f"device must be 'cpu' with backend='numpy'; got {device!r}")


class ArrayBackend:
    """Scores queries against a feature matrix held by the backend.

    Parameters
    ----------
    name:
        ``"numpy"`` or ``"torch"``.
    device:
        torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); must be ``"cpu"`` for numpy.
    """

    def __init__(self, name: str = "numpy", device: str = "cpu") -> None:
        check_backend(name, device)
        self.name = name
        self.device = device
        if name == "torch":
            try:
                import torch
            except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
                raise ModuleNotFoundError(
                    "backend='torch' needs torch: pip install 'scarce[neural]'"
                ) from exc
            self._torch = torch

    def __repr__(self) -> str:
        return f"ArrayBackend(name={self.name!r}, device={self.device!r})"

    def put(self, features: np.ndarray) -> Any:
        """The ``(K, m)`` features as this backend's array (a tensor on the device for torch)."""
        if self.name == "numpy":
            return features
        return self._torch.from_numpy(np.ascontiguousarray(features)).to(self.device)

    def scores(self, queries: np.ndarray, held: Any) -> np.ndarray:
        """``(n, K)`` float64 inner products of ``queries`` ``(n, m)`` with every held row."""
        return self._to_numpy(self._block(queries, held)).astype(np.float64)

    def _block(self, queries: np.ndarray, held: Any) -> Any:
        """Products in the held dtype, as a backend array."""
        if self.name == "numpy":
            return queries.astype(held.dtype, copy=False) @ held.T
        q = self._torch.from_numpy(np.ascontiguousarray(queries)).to(self.device, held.dtype)
        return q @ held.T

    def _to_numpy(self, a: Any) -> np.ndarray:
        return a if self.name == "numpy" else a.cpu().numpy()

    def _mask(self, block: Any, mask: np.ndarray) -> Any:
        if self.name == "numpy":
            return np.where(mask, block, -np.inf)
        m = self._torch.from_numpy(np.array(mask, dtype=bool, copy=not mask.flags.writeable))
        m = m.to(self.device)
        return block.masked_fill(~m, float("-inf"))

    def _block_topk(self, block: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of each row, ties at the cut resolved to the lower column (as a stable sort)."""
        if self.name == "numpy":
            if k < block.shape[1]:
                idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                idx = np.broadcast_to(np.arange(block.shape[1]), block.shape)
            vals = np.take_along_axis(block, idx, axis=1)
            cut = vals.min(axis=1)
            tied = np.flatnonzero(np.isfinite(cut) & ((block >= cut[:, None]).sum(axis=1) > k))
            for r in tied:  # rare: a tie straddles the cut
                idx[r] = np.argsort(-block[r], kind="stable")[:k]
                vals[r] = block[r, idx[r]]
            return vals.astype(np.float64), idx
        torch = self._torch
        vals, idx = torch.topk(block, k, dim=1)
        cut = vals[:, -1:]
        tied = torch.nonzero(torch.isfinite(cut[:, 0]) & ((block >= cut).sum(dim=1) > k)).flatten()
        if tied.numel():
            order = torch.sort(-block[tied], dim=1, stable=True).indices[:, :k]
            idx[tied] = order
            vals[tied] = torch.gather(block[tied], 1, order)
        return vals.double().cpu().numpy(), idx.cpu().numpy()

    def topk(
        self,
        queries: np.ndarray,
        held: Any,
        k: int,
        *,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` largest inner products per query, best first.

        Parameters
        ----------
        queries:
            ``(n, m)`` query vectors.
        held:
            the ``(K, m)`` features from :meth:`put`.
        k:
            how many to return (at most ``K``).
        allowed:
            optional ``(K,)`` or ``(n, K)`` bool mask; other rows are never returned (their
            slots come back as id ``-1`` with score ``-inf`` when fewer than ``k`` are allowed).

        Returns
        -------
        scores, ids:
            ``(n, k)`` float64 (computed in the held dtype) and int64, by decreasing score
            (ties: lower id first).
        """
        n, K = queries.shape[0], int(held.shape[0])
        k = min(int(k), K)
        step = max(1024, _BLOCK // max(n, 1))
        best_s = np.full((n, 0), -np.inf)
        best_i = np.zeros((n, 0), dtype=np.int64)
        for start in range(0, K, step):
            stop = min(K, start + step)
            block = self._block(queries, held[start:stop])
            if allowed is not None:
                mask = allowed[..., start:stop]
                block = self._mask(
                    block, mask if mask.ndim == 2 else np.broadcast_to(mask, (n, stop - start))
                )
            vals, idx = self._block_topk(block, min(k, stop - start))
            cand_s = np.concatenate([best_s, vals], axis=1)
            cand_i = np.concatenate([best_i, idx + start], axis=1)
            order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k]
            best_s = np.take_along_axis(cand_s, order, axis=1)
            best_i = np.take_along_axis(cand_i, order, axis=1)
        best_i = np.where(np.isfinite(best_s), best_i, -1)
        return best_s, best_i
