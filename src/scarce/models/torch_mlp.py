"""A small ReLU network trained in torch and evaluated in NumPy (extra ``neural``: PyTorch).

:class:`MLP` is the one network every neural piece of the library uses (the neural bandits of
:mod:`scarce.policies.neural`, :mod:`scarce.models.neural_linear`, the fair allocation's
neural outcome model, banks of per-target networks): ``n_members`` independent perceptrons
with ``n_outputs`` heads on each body, trained by Adam on minibatches for a given number of
steps, warm-started from the current weights, and evaluated in NumPy from cached weights (a
forward pass of one row costs microseconds, not a torch call).

Cost. The networks are small, so a training step is dominated by torch's per-operation
overhead, not arithmetic: weights are float32 (float64 doubled the time of a step on the
development machine), a single network keeps 2-D weight tensors and trains on 2-D ``addmm``
products (the batched form is kept for ensembles), the minibatches of many steps are drawn
and gathered in one call, the optimiser is torch's fused Adam, and the output of each row's
head is picked by one flat index. In the plain case (one member, squared loss, no dropout:
the neural-linear policies, NeuralUCB) a step's gradients are computed by the operations
autograd would run on its graph, in the same order, without the autograd engine, whose
bookkeeping cost more than the arithmetic (half of a retraining on the wheel); the weights
are bit for bit those of the autograd step (tested). Evaluation in NumPy uses float64 copies of the float32 weights,
so it equals torch's evaluation of the same weights in float64.

Losses (``loss``): ``"squared"`` (real targets, standardised per member: shift and scale from
the training rows, the output layer re-expressed exactly when they change, so a warm start
predicts what it predicted); ``"logistic"`` (targets in [0, 1], cross-entropy on the logit,
:meth:`MLP.predict` gives probabilities); ``"gaussian"`` (each head has a mean and a
log-variance output trained by the Gaussian negative log-likelihood;
:meth:`MLP.predict_variance` gives the predicted noise variance: aleatoric, it does not shrink
with data).

Randomness: each network owns a ``torch.Generator`` seeded from ``seed`` (initial weights,
minibatches, training dropout masks); torch's global RNG is never read. Decision-time
randomness (dropout masks of a Thompson sample) comes from a NumPy generator the caller
passes. State is NumPy arrays (:meth:`MLP.get_state`), never pickled modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar

LOSSES = ("squared", "logistic", "gaussian")
_LOG_VAR_CLAMP = 10.0


def torch_module() -> Any:
    """``torch``, or an ImportError that says which extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "neural models need PyTorch: pip install torch==2.13.0 && pip install 'scarce[neural]'"
        ) from exc
    return torch


class one_torch_thread:
    """Run torch on one intra-op thread inside the block, then restore the setting. The
    networks here are small: on a loaded 2-core machine a batch step took 69 ms with two
    threads and 2.9 ms with one (same script, same machine)."""

    def __enter__(self) -> None:
        self._torch = torch_module()
        self._before = self._torch.get_num_threads()
        if self._before != 1:
            self._torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        if self._before != 1:
            self._torch.set_num_threads(self._before)


class MLP:
    """``n_members`` independent ReLU perceptrons ``R^d -> R^{n_outputs}``, evaluated together.

    Parameters
    ----------
    n_inputs:
        input dimension ``d``.
    n_outputs:
        heads on each body (one per action for shared contexts; 1 for per-action features).
    hidden:
        widths of the hidden layers; the embedding is the last one.
    n_members:
        independent networks (an ensemble, or a bank of one network per model); 1 for one.
    dropout:
        probability of dropping a hidden unit in training and in :meth:`dropout_masks`.
    lr, weight_decay, batch_size:
        training settings (Adam; rows per minibatch step and member).
    loss:
        ``"squared"``, ``"logistic"`` or ``"gaussian"`` (module docstring).
    seed:
        seed or NumPy generator; seeds the network's own ``torch.Generator``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        *,
        hidden: Sequence[int] = (50,),
        n_members: int = 1,
        dropout: float = 0.0,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        loss: str = "squared",
        seed: SeedLike = None,
    ) -> None:
        torch = torch_module()
        self.n_inputs = check_positive_int(n_inputs, "n_inputs")
        self.n_outputs = check_positive_int(n_outputs, "n_outputs")
        self.hidden = tuple(check_positive_int(h, "hidden[i]") for h in hidden)
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width, e.g. (50,)")
        self.n_members = check_positive_int(n_members, "n_members")
        self.dropout = check_scalar(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
        self.lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        self.weight_decay = check_scalar(weight_decay, "weight_decay", low=0.0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
        self.loss = loss
        self._gen = torch.Generator().manual_seed(int(as_generator(seed).integers(2**62)))
        # a Gaussian head has a mean and a log-variance output per head
        n_raw = self.n_outputs * (2 if loss == "gaussian" else 1)
        widths = (self.n_inputs, *self.hidden, n_raw)
        # the trained tensors: (M, in, out) and (M, 1, out) per layer; for one member
        # (in, out) and (out,), so that a step has no indexing (and no backward of one)
        self._leaves: list[Any] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            # uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch.nn.Linear's scale, from our generator
            bound = 1.0 / math.sqrt(fan_in)
            for shape in ((self.n_members, fan_in, fan_out), (self.n_members, 1, fan_out)):
                u = torch.rand(shape, generator=self._gen, dtype=torch.float32)
                leaf = (2 * u - 1) * bound
                if self.n_members == 1:
                    leaf = leaf[0] if shape[1] == fan_in else leaf[0, 0]
                self._leaves.append(leaf.requires_grad_(True))
        self.shift = np.zeros(self.n_members)
        self.scale = np.ones(self.n_members)
        self._cache()

    @property
    def params(self) -> list[Any]:
        """The torch weights ``[W_1 (M, d, h_1), b_1 (M, 1, h_1), ..., W_L, b_L]`` (views of the
        trained tensors; float32)."""
        if self.n_members > 1:
            return self._leaves
        return [p[None] if p.ndim == 2 else p[None, None] for p in self._leaves]

    @property
    def embedding_dim(self) -> int:
        return self.hidden[-1]

    @property
    def n_parameters(self) -> int:
        """Parameters of one member."""
        return sum(int(np.prod(p.shape[1:])) for p in self.params)

    def _cache(self) -> None:
        self._np = [p.detach().numpy().astype(np.float64) for p in self.params]

    def weights(self) -> list[np.ndarray]:
        """The layers' ``[W_1 (M, d, h_1), b_1 (M, 1, h_1), ..., W_L, b_L]`` as float64 NumPy
        arrays (outputs in standardised units: multiply by ``scale``, add ``shift``; with the
        Gaussian loss the last layer has the means' columns then the log-variances')."""
        return self._np

    # ------------------------------------------------------------------ evaluation (NumPy)
    def _hidden(self, X: np.ndarray, masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        h = X[None]
        acts = []
        for layer in range(len(self.hidden)):
            W, b = self._np[2 * layer], self._np[2 * layer + 1]
            h = np.matmul(h, W)
            h += b
            h = np.maximum(h, 0.0, out=h)
            if masks is not None:
                h = h * masks[layer]
            acts.append(h)
        return acts

    def forward(
        self, X: np.ndarray, masks: Sequence[np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Hidden activations (one ``(M, n, h_l)`` array per layer) and raw standardised
        outputs ``(M, n, n_raw)`` of ``X`` ``(n, d)``; ``masks[l]`` ``(n, h_l)`` multiplies
        layer ``l``'s activations (dropout samples)."""
        acts = self._hidden(X, masks)
        return acts, np.matmul(acts[-1], self._np[-2]) + self._np[-1]

    def embed(self, X: np.ndarray) -> np.ndarray:
        """``(M, n, hidden[-1])`` last hidden layer of ``X`` ``(n, d)`` (no dropout; the output
        layer is not evaluated)."""
        return self._hidden(X)[-1]

    def predict(self, X: np.ndarray, masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """``(M, n, n_outputs)`` predictions in the targets' units (probabilities for the
        logistic loss, means for the Gaussian one)."""
        raw = self.forward(X, masks)[1][..., : self.n_outputs]
        if self.loss == "logistic":
            return 1.0 / (1.0 + np.exp(-raw))
        return raw * self.scale[:, None, None] + self.shift[:, None, None]

    def predict_variance(self, X: np.ndarray) -> np.ndarray:
        """``(M, n, n_outputs)`` predicted noise variances (Gaussian loss only)."""
        if self.loss != "gaussian":
            raise ValueError("predict_variance needs loss='gaussian'")
        log_var = self.forward(X)[1][..., self.n_outputs :]
        log_var = np.clip(log_var, -_LOG_VAR_CLAMP, _LOG_VAR_CLAMP)
        return np.exp(log_var) * self.scale[:, None, None] ** 2

    def dropout_masks(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One inverted-dropout mask per case and hidden layer, ``(n, h_l)`` each."""
        if self.dropout <= 0:
            raise ValueError("dropout_masks needs dropout > 0")
        keep = 1.0 - self.dropout
        return [(rng.random((n, h)) < keep) / keep for h in self.hidden]

    # ------------------------------------------------------------------ training (torch)
    def _rescale(self, shift: Any, scale: Any) -> None:
        """Change the target standardisation (per member: ``(M,)`` or scalars) without
        changing any prediction (up to float32 rounding of the output layer)."""
        torch = torch_module()
        M = self.n_members
        shift = np.broadcast_to(np.asarray(shift, dtype=float), (M,))
        scale = np.broadcast_to(np.asarray(scale, dtype=float), (M,))
        W, b = self.params[-2], self.params[-1]
        H = self.n_outputs
        ratio = torch.from_numpy((self.scale / scale).astype(np.float32))[:, None, None]
        offset = torch.from_numpy(((self.shift - shift) / scale).astype(np.float32))[:, None, None]
        with torch.no_grad():
            W[..., :H].mul_(ratio)
            b[..., :H].mul_(ratio).add_(offset)
            if self.loss == "gaussian":  # log-variances in the new units
                b[..., H:].add_(2.0 * torch.log(ratio))
        self.shift, self.scale = np.array(shift, dtype=float), np.array(scale, dtype=float)
        self._cache()

    def _standardise(self, y: np.ndarray, weights: np.ndarray | None) -> None:
        """Per-member shift and scale of the targets (weighted by each member's row weights)."""
        w = np.ones((y.shape[0], self.n_members)) if weights is None else weights
        total = w.sum(axis=0)
        ok = total > 0
        safe = np.where(ok, total, 1.0)
        mean = (w * y[:, None]).sum(axis=0) / safe
        sd = np.sqrt(np.maximum((w * (y[:, None] - mean) ** 2).sum(axis=0) / safe, 0.0))
        flat = sd <= 1e-8 * np.maximum(1.0, np.abs(mean))
        shift = np.where(ok, mean, self.shift)
        scale = np.where(ok & ~flat, sd, np.where(ok, 1.0, self.scale))
        self._rescale(shift, scale)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        heads: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        *,
        n_steps: int = 100,
    ) -> MLP:
        """``n_steps`` Adam steps, from the current weights, on minibatches of the rows.

        Parameters
        ----------
        X, y:
            ``(n, d)`` inputs and ``(n,)`` targets.
        heads:
            ``(n,)`` ints in ``[0, n_outputs)``: the output each row's target belongs to
            (the loss ignores the other outputs); None: all rows on output 0.
        weights:
            ``(n, n_members)`` non-negative row weights per member (bootstrap masks, or a
            one-hot of the model each row belongs to in a bank of independent networks);
            None: 1. Each member draws its minibatch with probabilities proportional to its
            weights, so it trains on its own rows only, with a full batch; a member whose
            weights are all 0 does not move.
        n_steps:
            minibatch steps; each draws ``batch_size`` rows with replacement (per member).
        """
        torch = torch_module()
        n = X.shape[0]
        if n == 0:
            return self
        n_steps = check_positive_int(n_steps, "n_steps")
        heads = np.zeros(n, dtype=np.int64) if heads is None else np.asarray(heads, np.int64)
        y = np.asarray(y, dtype=np.float64)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).reshape(n, self.n_members)
            if np.any(weights < 0):
                raise ValueError("weights must be non-negative")
        if self.loss == "logistic":
            if y.min() < 0 or y.max() > 1:
                raise ValueError("y must lie in [0, 1] for loss='logistic'")
            yn = y
        else:
            self._standardise(y, weights)
            if weights is None:
                yn = (y - self.shift[0]) / self.scale[0]
            else:  # per-member targets (n, M)
                yn = (y[:, None] - self.shift) / self.scale
        data = (
            torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(yn, dtype=np.float32)),
            torch.from_numpy(heads),
            None if weights is None else torch.from_numpy(weights.T.copy()),
        )
        with one_torch_thread():
            self._steps(*data, n_steps)
        self._cache()
        return self

    def _forward_t(self, h: Any, train: bool) -> Any:
        """Raw outputs of a minibatch ``h``: ``(B, d)`` -> ``(B, n_raw)`` for one member,
        ``(M, B, d)`` -> ``(M, B, n_raw)`` for several."""
        torch = torch_module()
        P = self._leaves
        single = self.n_members == 1
        keep = 1.0 - self.dropout
        n_layers = len(self.hidden) + 1
        for layer in range(n_layers):
            W, b = P[2 * layer], P[2 * layer + 1]
            h = torch.addmm(b, h, W) if single else torch.baddbmm(b, h, W)
            if layer < n_layers - 1:
                h = torch.relu(h)
                if train and self.dropout > 0:
                    mask = torch.rand(h.shape, generator=self._gen) < keep
                    h = h * mask / keep
        return h

    #: train the plain case (:meth:`_plain`) by :meth:`_plain_grads` (False: by autograd)
    _hand_backward = True

    def _plain(self) -> bool:
        """One member, squared loss, no dropout: the case :meth:`_plain_grads` computes."""
        return self.n_members == 1 and self.loss == "squared" and self.dropout == 0

    def _plain_grads(self, x: Any, y: Any, flat: Any, B: int) -> list[Any]:
        """Gradients of one minibatch's loss ``mean_i (out_i[head_i] - y_i)^2`` in the weights
        of a single member without dropout (unweighted rows): the operations autograd runs on
        the general step's graph (``torch.autograd.grad``), in the same order, so the same
        numbers (tests/neural/test_mlp.py compares them bit for bit); without the autograd
        engine, whose bookkeeping costs more than this arithmetic at these sizes."""
        torch = torch_module()
        P = self._leaves
        n_layers = len(self.hidden) + 1
        with torch.no_grad():
            acts = [x]
            h = x
            for layer in range(n_layers):
                h = torch.addmm(P[2 * layer + 1], h, P[2 * layer])
                if layer < n_layers - 1:
                    h = torch.relu(h)
                acts.append(h)
            pred = h.reshape(-1)[flat]
            # d loss / d pred: sum and mean backward give 1 / B, pow backward 2 (pred - y)
            g_pred = torch.full((B,), 1.0) / B * (2.0 * (pred - y))
            g = torch.zeros(acts[-1].numel()).index_put_((flat,), g_pred, accumulate=True)
            g = g.reshape(acts[-1].shape)
            grads: list[Any] = [None] * len(P)
            for layer in range(n_layers - 1, -1, -1):
                inp = acts[layer]
                grads[2 * layer] = inp.t().mm(g)
                grads[2 * layer + 1] = g.sum(0)
                if layer:
                    g = torch.ops.aten.threshold_backward(g.mm(P[2 * layer].t()), inp, 0)
        return grads

    def _steps(self, Xt: Any, yt: Any, ht: Any, wt: Any, n_steps: int) -> None:
        torch = torch_module()
        n = Xt.shape[0]
        M, B = self.n_members, self.batch_size
        n_raw = self._leaves[-1].shape[-1]
        from torch.optim.adam import adam

        # Adam's functional form on our own state: torch.optim.Adam's step wraps the same
        # fused kernel in hooks and profiling records that cost more than the kernel here
        params = self._leaves
        exp_avg = [torch.zeros_like(p) for p in params]
        exp_avg_sq = [torch.zeros_like(p) for p in params]
        step_count = [torch.zeros((), dtype=torch.float32) for _ in params]
        settings = dict(
            amsgrad=False,
            beta1=0.9,
            beta2=0.999,
            lr=self.lr,
            weight_decay=self.weight_decay,
            eps=1e-8,
            maximize=False,
        )
        rows = torch.arange(B) * n_raw
        H = self.n_outputs
        if wt is not None:
            cdf = torch.cumsum(wt, dim=1)  # (M, n)
            total = cdf[:, -1:].clone()
            active = (total[:, 0] > 0).to(torch.float32)  # (M,)
            cdf[total[:, 0] <= 0] = torch.arange(1, n + 1, dtype=cdf.dtype)
            total = cdf[:, -1:]
            members = torch.arange(M)[:, None]
        # the minibatches of many steps are drawn in one call (the generator gives the same
        # numbers as one call per step) and gathered at once: a call costs more than its
        # arithmetic here. Training dropout draws from the same generator between the steps,
        # so with dropout each step draws its own.
        plain = self._hand_backward and self._plain()
        chunk = 1 if self.dropout > 0 else max(1, min(n_steps, (1 << 16) // (B * M)))
        done = 0
        while done < n_steps:
            c = min(chunk, n_steps - done)
            done += c
            if wt is None:
                idx_c = torch.randint(n, (c, B), generator=self._gen)
                X_c, y_c, flat_c = Xt[idx_c], yt[idx_c], rows + ht[idx_c]
            else:
                u_c = torch.rand((c, M, B), generator=self._gen, dtype=cdf.dtype) * total
            for s in range(c):
                if wt is None:
                    x = X_c[s] if M == 1 else X_c[s].expand(M, B, -1)
                    y, flat = y_c[s], flat_c[s]
                else:
                    idx = torch.searchsorted(cdf, u_c[s], right=True).clamp_(max=n - 1)  # (M, B)
                    x = Xt[idx][0] if M == 1 else Xt[idx]
                    y = yt[idx] if yt.ndim == 1 else yt[idx, members]
                    flat = rows + ht[idx]
                if plain:
                    grads = self._plain_grads(x, y, flat, B)
                    with torch.no_grad():
                        adam(
                            params,
                            grads,
                            exp_avg,
                            exp_avg_sq,
                            [],
                            step_count,
                            fused=True,
                            **settings,
                        )
                    continue
                out = self._forward_t(x, train=True).reshape(M, B * n_raw)
                if wt is None:
                    pred = out[:, flat]  # (M, B)
                else:
                    pred = out.gather(1, flat)
                if self.loss == "squared":
                    per = (pred - y) ** 2
                elif self.loss == "logistic":
                    per = torch.nn.functional.binary_cross_entropy_with_logits(
                        pred, y.expand_as(pred), reduction="none"
                    )
                else:
                    lv_flat = flat + H
                    lv = out[:, lv_flat] if wt is None else out.gather(1, lv_flat)
                    lv = lv.clamp(-_LOG_VAR_CLAMP, _LOG_VAR_CLAMP)
                    per = 0.5 * (lv + (pred - y) ** 2 * torch.exp(-lv))
                loss = per.mean(dim=1)
                loss = (loss * active).sum() if wt is not None else loss.sum()
                grads = list(torch.autograd.grad(loss, params))
                with torch.no_grad():
                    adam(params, grads, exp_avg, exp_avg_sq, [], step_count, fused=True, **settings)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"p{i}": a.copy() for i, a in enumerate(self._np)}
        state.update(shift=self.shift.copy(), scale=self.scale.copy())
        state["generator"] = self._gen.get_state().numpy().copy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        torch = torch_module()
        with torch.no_grad():
            for i, p in enumerate(self.params):
                value = np.asarray(state[f"p{i}"], dtype=np.float64)
                if value.shape != tuple(p.shape):
                    raise ValueError(
                        f"state['p{i}'] must have shape {tuple(p.shape)}; got {value.shape}"
                    )
                p.copy_(torch.from_numpy(value.astype(np.float32)))
        M = self.n_members
        self.shift = np.broadcast_to(np.asarray(state["shift"], dtype=float), (M,)).copy()
        self.scale = np.broadcast_to(np.asarray(state["scale"], dtype=float), (M,)).copy()
        self._gen.set_state(torch.from_numpy(np.asarray(state["generator"], dtype=np.uint8)))
        self._cache()
