"""Recurrent layers: RNN, LSTM and GRU over (batch, time, features), PyTorch's maths and weights.

Each is PyTorch's single-layer `batch_first=True` module: the same equations, gate order and
parameters ("weight_ih" (G*units, features), "weight_hh" (G*units, units), "bias_ih" and
"bias_hh" (G*units,), and the same four with "_reverse" when bidirectional), initial states of
zeros, and weights drawn from U(-1/sqrt(units), 1/sqrt(units)). Forward and backward through
time are written by hand for speed: each RNN or LSTM step does one (G*units, units + 1 +
features) @ (units + 1 + features, batch) product over [h_prev; 1; x_t] and the element-wise
gate maths (GRU: the input's share of every gate at every step is one product before the loop,
and each step does one (G*units, units + 1) product); after the loop one product over all steps
gives a direction's four gradients (GRU: one more for its n gate's input side), and one more
the input gradient.

>>> lstm = LSTM(16, return_sequences=True)
>>> lstm(np.zeros((8, 20, 3), dtype=np.float32)).shape
(8, 20, 16)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

import lamina
from lamina.case import Case
from lamina.plugins.layers import _references

if TYPE_CHECKING:
    from lamina.export import Graph


class _TorchUniform(lamina.Initializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the layers pass fan_in=units, PyTorch's bound.

    An Initializer rather than a bare draw, so that loading a file charges the weights to the
    loading budget before they are allocated.
    """

    def sample(self, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
        limit = 1.0 / np.sqrt(fan_in)
        return lamina.rng().uniform(-limit, limit, size=shape)


_UNIFORM = _TorchUniform()


class _Weights(NamedTuple):
    """One direction's weights as the loops use them, gate blocks in the cell's internal order.

    The forward copies carry their biases as a column that meets the row of ones in the step
    inputs (see `_inputs`), and their sigmoid gates' rows are halved (see `_Recurrent`).
    """

    ih: np.ndarray  # (G*units, features): dx = ih^T @ dgates
    ih_half: np.ndarray  # (G*units, 1 + features): [bias_ih | weight_ih], halved rows
    hh_half: np.ndarray  # (G*units, units + 1): [weight_hh | bias_hh], halved rows
    hh_t: np.ndarray  # (units, G*units): dh_prev = hh_t @ dgates


def _flip(reverse: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Views of time-ordered arrays in the order a direction reads them."""
    return (lambda a: a[::-1]) if reverse else (lambda a: a)


def _whole(w: _Weights, units: int) -> np.ndarray:
    """[weight_hh | bias_hh + bias_ih | weight_ih], halved rows: a whole step input [h; 1; x]'s weights."""
    return np.concatenate([w.hh_half[:, :units], w.hh_half[:, units:] + w.ih_half[:, :1], w.ih_half[:, 1:]], axis=1)


def _inputs(x: np.ndarray, units: int, reverse: bool) -> np.ndarray:
    """One direction's step inputs, (time + 1, units + 1 + features, batch), time-ordered.

    Each holds a state h, a row of ones and the x that a step reads with it: step t reads
    [h_prev; 1; x_t], so that one product gives both weights and both biases their gradients.
    The initial state of zeros is first (last when reverse), and its place in time ends the
    other states (it is read by no step, so its x rows stay unset).
    """
    batch, steps, features = x.shape
    z = np.empty((steps + 1, units + 1 + features, batch), dtype=x.dtype)
    z[:, units] = 1
    z[-1 if reverse else 0, :units] = 0
    _read(z, reverse)[:, units + 1:] = x.transpose(1, 2, 0)
    return z


def _read(z: np.ndarray, reverse: bool) -> np.ndarray:
    """The step inputs that the steps read, time-ordered: step t reads _read(z)[t]."""
    return z[1:] if reverse else z[:-1]


def _written(z: np.ndarray, reverse: bool) -> np.ndarray:
    """The states that the steps wrote, time-ordered (h_t is _written(z)[t, :units])."""
    return z[:-1] if reverse else z[1:]


class _Recurrent(lamina.Layer):
    """What RNN, LSTM and GRU share: parameters, checks, directions, output and weight gradients.

    Inside, arrays are time-major and a step's are (features, batch): each gate's block of rows
    is then one contiguous array, and numpy runs the element-wise gate maths on contiguous
    arrays several times faster than on column slices of (batch, G*units).
    A cell sees its gate blocks in `order` (PyTorch's block numbers), its `sigmoids` sigmoid
    gates first; the forward copies of their weight rows are halved, so that one tanh over all
    gates gives sigmoid(a) = (1 + tanh(a / 2)) / 2 where needed (and never overflows). A cell
    implements `_scan` (forward through time) and `_backscan` (backward through time).
    """

    gates = 1  # G: gate blocks in weight_ih's rows
    order: tuple[int, ...] = (0,)
    sigmoids = 0
    shared: int | None = None  # gate blocks (first in internal order) whose two sides get one gradient; None: all
    keeps = ("_weights", "_runs")  # what forward keeps for backward
    # True: `_scan` gets no `gi` and multiplies each step's whole [h_prev; 1; x_t] by
    # [weight_hh | both biases | weight_ih] (`_whole`): one product per step instead of a
    # product and an addition, and no product before the loop (measured faster: LSTM 7%, RNN
    # 6%). GRU needs the input's share of its n gate apart.
    whole_steps = True
    onnx_op = "RNN"  # the ONNX operator, and PyTorch's gate blocks in its order
    onnx_order: tuple[int, ...] = (0,)
    # torch.nn.RNN/LSTM/GRU(features, units, batch_first=True, bidirectional=...): one layer, "_l0"
    torch_layout = {f"{name}{suffix}": f"{name}_l0{suffix}" for suffix in ("", "_reverse")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}

    def __init__(self, units: int, return_sequences: bool = False, bidirectional: bool = False) -> None:
        name = type(self).__name__
        self.units = lamina.checks.positive_int(units, "units", name, example=64)
        self.return_sequences = lamina.checks.boolean(return_sequences, "return_sequences", name)
        self.bidirectional = lamina.checks.boolean(bidirectional, "bidirectional", name)
        self.weight_ih: lamina.Parameter | None = None
        self.weight_hh: lamina.Parameter | None = None
        self.bias_ih: lamina.Parameter | None = None
        self.bias_hh: lamina.Parameter | None = None
        self.weight_ih_reverse: lamina.Parameter | None = None
        self.weight_hh_reverse: lamina.Parameter | None = None
        self.bias_ih_reverse: lamina.Parameter | None = None
        self.bias_hh_reverse: lamina.Parameter | None = None

    # -- parameters ------------------------------------------------------------------------------

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def parameters(self) -> dict[str, lamina.Parameter]:
        found = {}
        for suffix in self._suffixes:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                param = getattr(self, name + suffix)
                if param is not None:
                    found[name + suffix] = param
        return found

    def build(self, x: np.ndarray) -> None:
        x = self._checked(x)
        dtype = x.dtype if x.dtype.kind == "f" else lamina.DEFAULT_DTYPE
        rows, units, features = self.gates * self.units, self.units, x.shape[2]
        for suffix in self._suffixes:  # PyTorch's draw order: weight_ih, weight_hh, bias_ih, bias_hh
            for name, shape in (("weight_ih", (rows, features)), ("weight_hh", (rows, units)),
                                ("bias_ih", (rows,)), ("bias_hh", (rows,))):
                setattr(self, name + suffix, lamina.Parameter(_UNIFORM(shape, dtype, fan_in=units)))

    def _checked(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] == 0:
            got = f"shape {x.shape}" if x.ndim == 3 else f"a {x.ndim}-D array of shape {x.shape}"
            raise lamina.ShapeError(
                f"{self!r} needs input of shape (batch, time, features) with at least one time step, got "
                f"{got}; pass a 3-D array (for single vectors, add a time axis of length 1: x[:, None, :])"
            )
        return x

    def _rows(self, order: tuple[int, ...] | None = None) -> np.ndarray:
        """The row indices that put PyTorch's gate blocks in `order` (default: the cell's internal order)."""
        units = self.units
        return np.concatenate([np.arange(block * units, (block + 1) * units) for block in order or self.order])

    def _prepared(self, suffix: str, dtype: np.dtype) -> _Weights:
        rows = self._rows()

        def get(name: str) -> np.ndarray:
            return getattr(self, name + suffix).value[rows].astype(dtype, copy=False)

        ih, hh = get("weight_ih"), get("weight_hh")
        half = np.ones((len(rows), 1), dtype=dtype)
        half[: self.sigmoids * self.units] = 0.5
        ih_half = np.concatenate([get("bias_ih")[:, None], ih], axis=1) * half
        hh_half = np.concatenate([hh, get("bias_hh")[:, None]], axis=1) * half
        return _Weights(ih, ih_half, hh_half, np.ascontiguousarray(hh.T))

    def _add(self, name: str, internal: np.ndarray) -> None:
        """Add a gradient whose gate blocks are in the internal order into the Parameter `name`."""
        param = getattr(self, name)
        if not param.trainable:  # frozen: its gradient stays zero
            return
        if self.order == tuple(range(self.gates)):
            param.grad += internal
        else:
            param.grad[self._rows()] += internal

    # -- ONNX export -------------------------------------------------------------------------------

    def _onnx_attributes(self) -> dict[str, Any]:
        """The cell's own attributes of its ONNX operator (RNN: its activation; GRU: PyTorch's reset)."""
        return {}

    def to_onnx(self, graph: Graph, x: str) -> str:
        """One ONNX RNN/LSTM/GRU node over the time-major input, its weights stacked per direction
        (W (D, G*units, features), R (D, G*units, units), B (D, 2*G*units) = [b_ih | b_hh]) with
        the gate blocks in ONNX's order; its Y or Y_h back to batch-major, directions side by side."""
        rows = self._rows(self.onnx_order)

        def stacked(hint: str, *names: str) -> str:
            arrays = [np.concatenate([getattr(self, n + suffix).value[rows] for n in names], axis=-1)
                      for suffix in self._suffixes]
            return graph.constant(np.stack(arrays), hint)

        y, y_h = graph.op(
            self.onnx_op, graph.op("Transpose", x, perm=[1, 0, 2]),
            stacked("W", "weight_ih"), stacked("R", "weight_hh"), stacked("B", "bias_ih", "bias_hh"), outputs=2,
            hidden_size=self.units, direction="bidirectional" if self.bidirectional else "forward",
            **self._onnx_attributes(),
        )
        if self.return_sequences:  # Y (time, D, batch, units) -> (batch, time, D * units)
            return graph.op("Reshape", graph.op("Transpose", y, perm=[2, 0, 1, 3]), graph.ints([0, 0, -1], "shape"))
        # Y_h (D, batch, units) -> (batch, D * units)
        return graph.op("Reshape", graph.op("Transpose", y_h, perm=[1, 0, 2]), graph.ints([0, -1], "shape"))

    # -- forward and backward ----------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.weight_ih is None:  # called as .forward() on an unbuilt layer
            self.build(x)
        x = self._checked(x)
        weight_ih = self.weight_ih
        if weight_ih is None:  # build() above always makes it
            raise lamina.LaminaError(f"{self!r}: build() made no weights")
        features = weight_ih.value.shape[1]
        if x.shape[2] != features:
            raise lamina.ShapeError(
                f"{self!r} was built for {features} features (last axis) but got shape {x.shape}, with "
                f"{x.shape[2]}; give it inputs of shape (batch, time, {features}), or use a new "
                f"{type(self).__name__} for the new width"
            )
        dtype = weight_ih.value.dtype
        dtype = np.result_type(x.dtype, dtype) if x.dtype.kind == "f" else dtype
        x = x.astype(dtype, copy=False)
        batch, steps = x.shape[:2]
        units = self.units
        if self.only_building:  # the values do not matter: the output's shape, without the loop through time
            width = len(self._suffixes) * units
            return np.zeros((batch, steps, width) if self.return_sequences else (batch, width), dtype=dtype)
        weights, runs = [], []
        for d, suffix in enumerate(self._suffixes):
            reverse = d == 1
            w = self._prepared(suffix, dtype)
            z = _inputs(x, units, reverse)
            # The input's share of every gate at every step: one product before the loop (or
            # none, for a cell that reads [h_prev; 1; x_t] whole in each step's product).
            gi = None if self.whole_steps else np.matmul(w.ih_half, _read(z, reverse)[:, units:])
            weights.append(w)
            runs.append(self._scan(gi, z, w, reverse))
        self._weights, self._runs = weights, runs
        if self.return_sequences:
            out = np.empty((batch, steps, len(runs) * units), dtype=dtype)
            for d, run in enumerate(runs):
                out[:, :, d * units:(d + 1) * units] = _written(run["z"], d == 1)[:, :units].transpose(2, 0, 1)
            return out
        # PyTorch's h_n: the forward direction's last step, the backward direction's state
        # after reading the whole sequence backwards (its output at time 0).
        return np.concatenate([run["z"][0 if d == 1 else -1, :units].T for d, run in enumerate(runs)], axis=1)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        weights, runs = self._weights, self._runs
        units = self.units
        dtype = runs[0]["z"].dtype
        by_time = np.ascontiguousarray(grad.transpose(1, 2, 0), dtype=dtype) if self.return_sequences else None
        dx = None
        for d, (suffix, w, run) in enumerate(zip(self._suffixes, weights, runs)):
            reverse, part = d == 1, slice(d * units, (d + 1) * units)
            dgh, dgi = self._backscan(
                run, w,
                grad_seq=None if by_time is None else by_time[:, part],
                grad_last=None if by_time is not None else grad[:, part].T,
                reverse=reverse,
            )
            # Step t read [h_prev; 1; x_t]: one product over all steps gives dW_hh, the bias
            # and dW_ih, for the gate blocks whose two sides have the same gradient; none when
            # the direction's parameters are all frozen.
            if any(getattr(self, name + suffix).trainable for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                read = _read(run["z"], reverse)
                dw = np.tensordot(dgh, read, axes=([0, 2], [0, 2]))
                hidden, inputs = dw[:, :units + 1], dw[:, units:]
                if dgi is not dgh:
                    rows = slice((self.shared or 0) * units, None)
                    inputs = inputs.copy()  # the bias column is the hidden side's too
                    inputs[rows] = np.tensordot(dgi[:, rows], read[:, units:], axes=([0, 2], [0, 2]))
                self._add(f"weight_hh{suffix}", hidden[:, :units])
                self._add(f"bias_hh{suffix}", hidden[:, units])
                self._add(f"bias_ih{suffix}", inputs[:, 0])
                self._add(f"weight_ih{suffix}", inputs[:, 1:])
            if self.needs_input_grad:  # False for a model's first layer: skip a product
                step = np.matmul(w.ih.T, dgi)  # (time, features, batch)
                dx = step if dx is None else dx + step
        return None if dx is None else np.ascontiguousarray(dx.transpose(2, 0, 1))

    def _scan(self, gi: np.ndarray | None, z: np.ndarray, w: _Weights, reverse: bool) -> dict[str, np.ndarray]:
        """Run one direction: `gi` (time, G*units, batch) is the input's share of the gates
        (halved rows; None when `whole_steps`), `z` the step inputs (see `_inputs`), whose states
        it fills in. Returns what backward needs, time-ordered, `z` included."""
        raise NotImplementedError

    def _backscan(
        self, run: dict[str, np.ndarray], w: _Weights, grad_seq: np.ndarray | None, grad_last: np.ndarray | None,
        reverse: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One direction's dL/d(hidden share of the gates) and dL/d(input's share), (time,
        G*units, batch) each; the same array unless the two differ (GRU). `grad_seq` is dL/dh
        at every step (time, units, batch), or `grad_last` (units, batch) at the last step only."""
        raise NotImplementedError


def _cases(reference: Callable[..., Any], sequences: dict[str, Any] | None = None) -> list[Case]:
    """A cell's conformance cases: one direction and two, the last step and every step (causal
    in time), each checked against `reference`; `sequences`: more arguments for the cases that
    return every step (RNN's relu)."""
    more = sequences or {}
    return [
        Case({"units": 3}, (3, 4, 2), wrong_shape=(3, 4, 5), reference=reference),
        Case({"units": 3, **more, "return_sequences": True}, (3, 4, 2), wrong_shape=(3, 4),
             reference=reference, causal_axis=1),
        Case({"units": 2, "bidirectional": True}, (3, 4, 2), wrong_shape=(3, 4, 5), reference=reference),
        Case({"units": 2, **more, "return_sequences": True, "bidirectional": True}, (2, 3, 3),
             wrong_shape=(2, 3, 6), reference=reference),
    ]


def _first_grad(grad_seq: np.ndarray | None, grad_last: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """A new buffer holding dL/dh of a direction's last step (never the caller's array)."""
    dh = np.empty_like(like)
    dh[...] = grad_last if grad_seq is None else grad_seq[-1]
    return dh


class RNN(_Recurrent):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu; x (batch, time, features)
    -> h_T (batch, units), or every h_t (batch, time, units) with return_sequences=True; twice the
    units, both directions concatenated, when bidirectional. PyTorch's torch.nn.RNN parameters.
    """

    conformance_cases = _cases(_references.rnn, {"nonlinearity": "relu"})

    def __init__(
        self, units: int, nonlinearity: str = "tanh", return_sequences: bool = False, bidirectional: bool = False
    ) -> None:
        self.nonlinearity = lamina.checks.one_of(nonlinearity, "nonlinearity", "RNN", ("tanh", "relu"))
        super().__init__(units, return_sequences, bidirectional)

    def _onnx_attributes(self) -> dict[str, Any]:
        return {"activations": ["Tanh" if self.nonlinearity == "tanh" else "Relu"] * len(self._suffixes)}

    def _scan(self, gi, z, w, reverse):
        n = self.units
        zs, whole = _flip(reverse)(z), _whole(w, n)
        for k in range(z.shape[0] - 1):
            h = zs[k + 1, :n]
            np.matmul(whole, zs[k], out=h)
            if self.nonlinearity == "tanh":
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
        return {"z": z}

    def _backscan(self, run, w, grad_seq, grad_last, reverse):
        flip = _flip(reverse)
        n, z = self.units, run["z"]
        dgates = np.empty((z.shape[0] - 1, n, z.shape[2]), dtype=z.dtype)
        zs, dps = flip(z), flip(dgates)
        grad_seq = None if grad_seq is None else flip(grad_seq)
        dh = _first_grad(grad_seq, grad_last, dps[0])
        for k in reversed(range(dps.shape[0])):
            h, dp = zs[k + 1, :n], dps[k]
            if self.nonlinearity == "tanh":  # tanh' = 1 - h^2
                np.multiply(h, h, out=dp)
                np.subtract(1, dp, out=dp)
            else:  # relu' is 1 where h > 0, else 0 (PyTorch's at 0): sign(h), as h >= 0
                np.sign(h, out=dp)
            dp *= dh
            if k:
                np.matmul(w.hh_t, dp, out=dh)
                if grad_seq is not None:
                    dh += grad_seq[k - 1]
        return dgates, dgates


class LSTM(_Recurrent):
    """PyTorch's torch.nn.LSTM, gates i, f, g, o in weight rows: with a = W_ih x_t + b_ih + W_hh h + b_hh,
    i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    x (batch, time, features) -> h_T (batch, units), or every h_t with return_sequences=True;
    twice the units, both directions concatenated, when bidirectional.
    """

    gates = 4
    order = (0, 1, 3, 2)  # i, f, o, g: the three sigmoid gates side by side
    sigmoids = 3
    onnx_op = "LSTM"
    onnx_order = (0, 3, 1, 2)  # ONNX's i, o, f, c

    conformance_cases = _cases(_references.lstm)

    def __init__(self, units: int, return_sequences: bool = False, bidirectional: bool = False) -> None:
        super().__init__(units, return_sequences, bidirectional)

    def _scan(self, gi, z, w, reverse):
        steps, n, batch = z.shape[0] - 1, self.units, z.shape[2]
        dtype = z.dtype
        run = {
            "z": z,
            "a": np.empty((steps, 4 * n, batch), dtype=dtype),  # i, f, o, g after their nonlinearities
            "c": np.empty((steps + 1, n, batch), dtype=dtype),  # placed as the states: initial zeros first
            "tanh_c": np.empty((steps, n, batch), dtype=dtype),
        }
        flip = _flip(reverse)
        zs, acts, cs, tcs = flip(z), flip(run["a"]), flip(run["c"]), flip(run["tanh_c"])
        whole = _whole(w, n)
        cs[0] = 0
        fc = np.empty((n, batch), dtype=dtype)
        for k in range(steps):
            a, c, tc = acts[k], cs[k + 1], tcs[k]
            np.matmul(whole, zs[k], out=a)
            np.tanh(a, out=a)
            sig = a[: 3 * n]  # sigmoid(z) = (1 + tanh(z / 2)) / 2; the halving is in the weights
            sig *= 0.5
            sig += 0.5
            i, f, o, g = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:]
            np.multiply(i, g, out=c)
            np.multiply(f, cs[k], out=fc)
            c += fc
            np.tanh(c, out=tc)
            np.multiply(o, tc, out=zs[k + 1, :n])
        return run

    def _backscan(self, run, w, grad_seq, grad_last, reverse):
        flip = _flip(reverse)
        dgates = np.empty_like(run["a"])
        acts, cs, tcs, dps, hs = flip(run["a"]), flip(run["c"]), flip(run["tanh_c"]), flip(dgates), flip(run["z"])
        grad_seq = None if grad_seq is None else flip(grad_seq)
        n = self.units
        dh = _first_grad(grad_seq, grad_last, tcs[0])
        dc = np.zeros_like(dh)
        tmp = np.empty_like(dh)
        tmp3 = np.empty((3 * n, dh.shape[1]), dtype=dh.dtype)
        for k in reversed(range(tcs.shape[0])):
            a, tc, dp = acts[k], tcs[k], dps[k]
            i, f, o, g = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:]
            # h = o tanh(c): dc += dh o (1 - tanh(c)^2) = dh (o - h tanh(c)), one pass fewer
            np.multiply(hs[k + 1, :n], tc, out=tmp)
            np.subtract(o, tmp, out=tmp)
            tmp *= dh
            dc += tmp
            # c = f c_prev + i g: dL/d(i, f, o), then times sigmoid' = s (1 - s)
            np.multiply(dc, g, out=dp[:n])
            np.multiply(dc, cs[k], out=dp[n:2 * n])
            np.multiply(dh, tc, out=dp[2 * n:3 * n])
            np.subtract(1, a[:3 * n], out=tmp3)
            tmp3 *= a[:3 * n]
            dp[:3 * n] *= tmp3
            # dL/dg times tanh' = 1 - g^2
            np.multiply(dc, i, out=dp[3 * n:])
            np.multiply(g, g, out=tmp)
            np.subtract(1, tmp, out=tmp)
            dp[3 * n:] *= tmp
            if k:
                dc *= f
                np.matmul(w.hh_t, dp, out=dh)
                if grad_seq is not None:
                    dh += grad_seq[k - 1]
        return dgates, dgates


class GRU(_Recurrent):
    """PyTorch's torch.nn.GRU, gates r, z, n in weight rows: r, z = sigmoid(W_i x_t + b_i + W_h h + b_h),
    n = tanh(W_in x_t + b_in + r (W_hn h + b_hn)), h_t = (1 - z) n + z h_{t-1}.
    x (batch, time, features) -> h_T (batch, units), or every h_t with return_sequences=True;
    twice the units, both directions concatenated, when bidirectional.
    """

    gates = 3
    order = (0, 1, 2)
    sigmoids = 2
    shared = 2  # r and z; n's hidden side is multiplied by r
    whole_steps = False  # n = tanh(W_in x + b_in + r (W_hn h + b_hn)): the input's share apart
    onnx_op = "GRU"
    onnx_order = (1, 0, 2)  # ONNX's z, r, h

    conformance_cases = _cases(_references.gru)

    def __init__(self, units: int, return_sequences: bool = False, bidirectional: bool = False) -> None:
        super().__init__(units, return_sequences, bidirectional)

    def _onnx_attributes(self) -> dict[str, Any]:
        return {"linear_before_reset": 1}  # PyTorch's n: r * (W_hn h + b_hn)

    def _scan(self, gi, z, w, reverse):
        steps, n, batch = gi.shape[0], self.units, gi.shape[2]
        run = {
            "z": z,
            "a": np.empty((steps, 3 * n, batch), dtype=gi.dtype),  # r, z, n after their nonlinearities
            "gh": np.empty((steps, 3 * n, batch), dtype=gi.dtype),  # W_hh h_prev + b_hh (r, z halved)
        }
        flip = _flip(reverse)
        gi, zs, acts, ghs = flip(gi), flip(z), flip(run["a"]), flip(run["gh"])
        for k in range(steps):
            a, gh, h = acts[k], ghs[k], zs[k + 1, :n]
            np.matmul(w.hh_half, zs[k, :n + 1], out=gh)
            rz = a[:2 * n]
            np.add(gi[k][:2 * n], gh[:2 * n], out=rz)
            np.tanh(rz, out=rz)  # sigmoid(z) = (1 + tanh(z / 2)) / 2; the halving is in the weights
            rz *= 0.5
            rz += 0.5
            r, z, new = a[:n], a[n:2 * n], a[2 * n:]
            np.multiply(r, gh[2 * n:], out=new)
            new += gi[k][2 * n:]
            np.tanh(new, out=new)
            # h = (1 - z) n + z h_prev = n + z (h_prev - n)
            np.subtract(zs[k, :n], new, out=h)
            h *= z
            h += new
        return run

    def _backscan(self, run, w, grad_seq, grad_last, reverse):
        flip = _flip(reverse)
        n = self.units
        dgh_all, dgi_all = np.empty_like(run["gh"]), np.empty_like(run["gh"])  # they differ in the n block
        acts, ghs, zs, dgis, dghs = flip(run["a"]), flip(run["gh"]), flip(run["z"]), flip(dgi_all), flip(dgh_all)
        grad_seq = None if grad_seq is None else flip(grad_seq)
        dh = _first_grad(grad_seq, grad_last, zs[0, :n])
        tmp = np.empty_like(dh)
        tmp2 = np.empty((2 * n, dh.shape[1]), dtype=dh.dtype)
        for k in reversed(range(acts.shape[0])):
            a, dgh, dgi_k = acts[k], dghs[k], dgis[k]
            r, z, new = a[:n], a[n:2 * n], a[2 * n:]
            dn = dgi_k[2 * n:]
            # h = (1 - z) n + z h_prev: dL/dz = dh (h_prev - n); dL/dn = dh (1 - z), times tanh' = 1 - n^2
            np.subtract(zs[k, :n], new, out=dgh[n:2 * n])
            dgh[n:2 * n] *= dh
            np.subtract(1, z, out=dn)
            dn *= dh
            np.multiply(new, new, out=tmp)
            np.subtract(1, tmp, out=tmp)
            dn *= tmp
            # n = tanh(gi_n + r gh_n): dL/dr = dn gh_n; dL/d(gh_n) = dn r
            np.multiply(dn, ghs[k][2 * n:], out=dgh[:n])
            np.subtract(1, a[:2 * n], out=tmp2)  # sigmoid' = s (1 - s) for r and z
            tmp2 *= a[:2 * n]
            dgh[:2 * n] *= tmp2
            np.multiply(dn, r, out=dgh[2 * n:])
            dgi_k[:2 * n] = dgh[:2 * n]  # r and z see the same sum from both sides
            if k:
                np.multiply(dh, z, out=tmp)
                np.matmul(w.hh_t, dgh, out=dh)
                dh += tmp
                if grad_seq is not None:
                    dh += grad_seq[k - 1]
        return dgh_all, dgi_all


@lamina.hookimpl
def register_layers(register):
    register(RNN)
    register(LSTM)
    register(GRU)
