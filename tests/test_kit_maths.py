"""The conformance kit checks the maths: a case's `reference` and `causal_axis` catch what the
contracts cannot (a causal mask the wrong way round, heads split wrongly, swapped GRU gates);
its messages name causes (no cases, a non-finite value, one failure in many cases); and the
checks helpers a layer's contract needs (input_shape, numbers)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_distribution, run_python
from test_registry import unique

import lamina
from lamina.testing import Case, check_plugin, format_failures

# -- a third-party author's forward-only layers, and PyTorch as their reference ------------------


class ForwardGRU(lamina.Layer):
    """torch.nn.GRU(batch_first=True) over (batch, time, features), every step's state out;
    written forward-only, weights stored (in, out)."""

    def __init__(self, units: int):
        self.units = lamina.checks.positive_int(units, "units", "ForwardGRU")

    def build(self, x):
        bound = 1 / math.sqrt(self.units)
        draw = lamina.rng().uniform
        self.w_ih = lamina.Parameter(draw(-bound, bound, (x.shape[-1], 3 * self.units)).astype(x.dtype))
        self.w_hh = lamina.Parameter(draw(-bound, bound, (self.units, 3 * self.units)).astype(x.dtype))
        self.b_ih = lamina.Parameter(draw(-bound, bound, 3 * self.units).astype(x.dtype))
        self.b_hh = lamina.Parameter(draw(-bound, bound, 3 * self.units).astype(x.dtype))

    def gates(self, a, b):  # r, z
        return lamina.ops.sigmoid(a), lamina.ops.sigmoid(b)

    def forward(self, x):
        lamina.checks.input_shape(x, type(self).__name__, ndim=3, last=self.w_ih.shape[0])
        u = self.units
        gi = x @ self.w_ih + self.b_ih
        h = np.zeros((x.shape[0], u), dtype=x.dtype)
        states = []
        for t in range(x.shape[1]):
            gh = h @ self.w_hh + self.b_hh
            r, z = self.gates(gi[:, t, :u] + gh[:, :u], gi[:, t, u:2 * u] + gh[:, u:2 * u])
            n = np.tanh(gi[:, t, 2 * u:] + r * gh[:, 2 * u:])
            h = (1 - z) * n + z * h
            states.append(h)
        return np.stack(states, axis=1)


class SwappedGates(ForwardGRU):
    def gates(self, a, b):  # bug (c): z where r belongs, and r where z belongs
        return lamina.ops.sigmoid(b), lamina.ops.sigmoid(a)


def torch_gru(layer, x):
    torch = pytest.importorskip("torch")
    gru = torch.nn.GRU(x.shape[-1], layer.units, batch_first=True).double()
    with torch.no_grad():
        for name, value in (("weight_ih_l0", layer.w_ih.value.T), ("weight_hh_l0", layer.w_hh.value.T),
                            ("bias_ih_l0", layer.b_ih.value), ("bias_hh_l0", layer.b_hh.value)):
            getattr(gru, name).copy_(torch.from_numpy(np.array(value, dtype=np.float64)))
        return gru(torch.from_numpy(x))[0].numpy()


class Block(lamina.Layer):
    """A pre-norm Transformer encoder block on (batch, time, embed), with a causal option:
    torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu", dropout=0)."""

    def __init__(self, heads: int, ff_units: int, causal: bool = False):
        self.heads = lamina.checks.positive_int(heads, "heads", "Block")
        self.ff_units = lamina.checks.positive_int(ff_units, "ff_units", "Block")
        self.causal = lamina.checks.boolean(causal, "causal", "Block")

    def build(self, x):
        lamina.checks.input_shape(x, type(self).__name__, ndim=3)
        e = x.shape[-1]
        self.qkv, self.out = lamina.layer("Linear", 3 * e), lamina.layer("Linear", e)
        self.ff1, self.ff2 = lamina.layer("Linear", self.ff_units), lamina.layer("Linear", e)
        self.norm1, self.norm2 = lamina.layer("LayerNorm"), lamina.layer("LayerNorm")

    def split(self, a, time, width):  # (batch, time, embed) -> (batch, heads, time, width)
        return a.reshape(-1, time, self.heads, width).transpose(0, 2, 1, 3)

    def mask(self, time):  # -inf where a query (row) would see a later key (column)
        return np.triu(np.full((time, time), -np.inf), k=1)

    def attend(self, z):
        time, e = z.shape[1], z.shape[2]
        width = e // self.heads
        qkv = self.qkv(z)
        q, k, v = (self.split(qkv[..., i * e:(i + 1) * e], time, width) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width)
        if self.causal:
            scores = scores + self.mask(time).astype(z.dtype)
        context = lamina.ops.softmax(scores, axis=-1) @ v
        return self.out(context.transpose(0, 2, 1, 3).reshape(-1, time, e))

    def forward(self, x):
        lamina.checks.input_shape(x, type(self).__name__, ndim=3, last=self.out.units)
        h = x + self.attend(self.norm1(x))
        return h + self.ff2(lamina.ops.gelu(self.ff1(self.norm2(h))))


class HidesPast(Block):
    def mask(self, time):  # bug (a): hides earlier keys, shows later ones
        return np.tril(np.full((time, time), -np.inf), k=-1)


class WrongSplit(Block):
    def split(self, a, time, width):  # bug (b): heads taken as if the axes were (heads, time)
        return a.reshape(-1, self.heads, time, width)


def torch_block(layer, x):
    torch = pytest.importorskip("torch")
    e = x.shape[-1]
    block = torch.nn.TransformerEncoderLayer(e, layer.heads, layer.ff_units, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True).double()
    pairs = {
        "self_attn.in_proj_weight": layer.qkv.weight.value.T, "self_attn.in_proj_bias": layer.qkv.bias.value,
        "self_attn.out_proj.weight": layer.out.weight.value.T, "self_attn.out_proj.bias": layer.out.bias.value,
        "linear1.weight": layer.ff1.weight.value.T, "linear1.bias": layer.ff1.bias.value,
        "linear2.weight": layer.ff2.weight.value.T, "linear2.bias": layer.ff2.bias.value,
        "norm1.weight": layer.norm1.weight.value, "norm1.bias": layer.norm1.bias.value,
        "norm2.weight": layer.norm2.weight.value, "norm2.bias": layer.norm2.bias.value,
    }
    block.load_state_dict({name: torch.from_numpy(np.array(v, dtype=np.float64)) for name, v in pairs.items()})
    mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=torch.float64)
    with torch.no_grad():
        return block(torch.from_numpy(x), src_mask=mask if layer.causal else None).numpy()


GRU_CASES = [Case({"units": 3}, (2, 4, 2), wrong_shape=(2, 4, 5), reference=torch_gru, causal_axis=1)]
BLOCK_CASES = [
    Case({"heads": 2, "ff_units": 6}, (2, 3, 4), wrong_shape=(2, 3, 6), reference=torch_block),
    Case({"heads": 2, "ff_units": 5, "causal": True}, (2, 5, 4), reference=torch_block, causal_axis=1),
]


def failed(cls, cases):
    return {r.property for r in check_plugin(cls, cases=cases) if r.ok is False}


@pytest.mark.parametrize("cls, cases", [(ForwardGRU, GRU_CASES), (Block, BLOCK_CASES)])
def test_correct_forward_only_layers_pass_the_kit_with_pytorch_references(cls, cases):
    pytest.importorskip("torch")
    results = check_plugin(cls, cases=cases)
    assert all(r.ok is not False for r in results), format_failures(results)
    ran = {r.property for r in results if r.ok}
    assert {"reference", "causal", "gradients"} <= ran


@pytest.mark.parametrize("cls, cases, properties", [
    (HidesPast, BLOCK_CASES, {"causal", "reference"}),
    (WrongSplit, BLOCK_CASES[:1], {"reference"}),  # causal too with a causal case: heads mix positions
    (SwappedGates, GRU_CASES, {"reference"}),
])
def test_each_planted_maths_bug_fails_its_property_and_only_that(cls, cases, properties):
    """Each passes every contract (the kit of old let them through) and fails on the maths."""
    pytest.importorskip("torch")
    assert failed(cls, cases) == properties


def test_a_reference_failure_says_how_much_and_where():
    pytest.importorskip("torch")
    [result] = [r for r in check_plugin(SwappedGates, cases=GRU_CASES) if r.property == "reference"]
    assert result.detail.startswith("in training mode: the output differs from the reference by up to ")
    assert " at index (" in result.detail and "tolerance 1e-06" in result.detail


def test_a_layer_that_looks_ahead_fails_causal_in_outputs_and_gradients():
    def numpy_attention(layer, x):  # the built-in's reference, so only causality is at stake
        from lamina.plugins.layers import _references
        return _references.multi_head_attention(layer, x)

    mha = lamina.get_registry().get("layer", "MultiHeadAttention").cls
    [result] = [r for r in check_plugin(mha, cases=[Case({"num_heads": 1}, (2, 4, 3), causal_axis=1,
                                                         reference=numpy_attention)]) if r.ok is False]
    assert result.property == "causal"
    assert "changing the inputs at positions > 0 along axis 1 changed the output at positions <= 0" in result.detail


def test_causal_checks_the_input_gradient_too():
    class LeaksInBackward(lamina.Layer):
        """y_t = cumulative sum of x up to t, with a backward that also sends gradient back to later steps."""

        def forward(self, x):
            return np.cumsum(x, axis=1)

        def backward(self, grad):
            return np.cumsum(grad[:, ::-1], axis=1)[:, ::-1] + 0.5 * np.roll(grad, 1, axis=1)

    [result] = [r for r in check_plugin(LeaksInBackward, cases=[Case(shape=(2, 4, 3), causal_axis=1)])
                if r.property == "causal"]
    assert result.ok is False and "has an input gradient of up to" in result.detail


def test_references_check_losses_too():
    class HalfMSE(lamina.Loss):
        def forward(self, pred, y):
            self._d = pred - y
            return float(np.mean(self._d ** 2)) / 2

        def backward(self):
            return self._d / self._d.size

    def mse(loss, pred, y):
        return np.mean((pred - y) ** 2)

    [result] = [r for r in check_plugin(HalfMSE, cases=[Case(shape=(4, 3), reference=mse)])
                if r.property == "reference"]
    assert result.ok is False and "the loss value: the output differs from the reference" in result.detail


# -- the built-ins carry references and causal axes, and pass them --------------------------------


@pytest.mark.parametrize("name, causal", [("RNN", True), ("LSTM", True), ("GRU", True),
                                          ("MultiHeadAttention", True), ("TransformerBlock", True)])
def test_built_in_sequence_layers_pass_their_numpy_references(name, causal):
    results = check_plugin(lamina.get_registry().get("layer", name).cls)
    assert all(r.ok is not False for r in results), format_failures(results)
    ran = {r.property for r in results if r.ok}
    assert "reference" in ran and ("causal" in ran) == causal


# -- messages: causes, once ---------------------------------------------------------------------------


class NeedsUnits(lamina.Layer):
    def __init__(self, units):
        self.units = units

    def forward(self, x):
        return x[..., :1] * self.units


def test_a_layer_without_cases_that_needs_arguments_gets_one_message_with_advice():
    results = check_plugin(NeedsUnits)
    failures = [r for r in results if r.ok is False]
    assert len(failures) == 1, format_failures(results)
    [failure] = failures
    assert failure.property == "cases"
    assert "missing 1 required positional argument: 'units'" in failure.detail
    assert 'add them to the class, e.g. conformance_cases = [Case(kwargs={"units": 4}, shape=(2, 5, 3))]' \
        in failure.detail
    assert all(r.ok is None for r in results if r.property != "cases")


class LogOfInput(lamina.Layer):
    def forward(self, x):
        return np.log(x)  # NaN for the negative half of a normal sample


class NaNGradient(lamina.Layer):
    def forward(self, x):
        return x

    def backward(self, grad):
        return grad * (np.zeros_like(grad) / np.zeros_like(grad))


def test_a_nan_output_is_said_as_such_with_the_input_that_made_it():
    [result] = [r for r in check_plugin(LogOfInput, sample_shapes=[(4, 3)]) if r.property == "gradients"]
    assert result.ok is False
    assert result.detail.startswith("the output is not finite: nan at index (")
    assert "for the float64 input of shape (4, 3) made by normal(seed 0)" in result.detail
    assert "FloatingPointError" not in result.detail


def test_a_nan_input_gradient_is_said_as_such():
    [result] = [r for r in check_plugin(NaNGradient, sample_shapes=[(4, 3)]) if r.property == "gradients"]
    assert result.ok is False and result.detail.startswith("the input gradient is not finite: nan at index (0, 0)")


class HalfGradient(lamina.Layer):
    conformance_cases = [Case(shape=(4, 3)), Case(shape=(2, 5)), Case(shape=(3, 2, 2))]

    def forward(self, x):
        return 3 * x

    def backward(self, grad):
        return 1.5 * grad


def test_a_property_failing_the_same_way_in_three_cases_is_reported_once():
    results = check_plugin(HalfGradient)
    failures = [r for r in results if r.ok is False]
    assert [(r.plugin, r.property) for r in failures] == [("HalfGradient[0, 1, 2]", "gradients")]


def test_failures_of_different_causes_stay_apart():
    results = check_plugin(HalfGradient, cases=[Case(shape=(4, 3)), Case(shape=(4, 3), tolerance=1.0)])
    assert [r.plugin for r in results if r.ok is False] == ["HalfGradient[0]"]


CASELESS = """
import numpy as np
import lamina


class MyGRU(lamina.Layer):
    '''Needs units, gives no conformance_cases.'''

    def __init__(self, units):
        self.units = units

    def forward(self, x):
        return x


@lamina.hookimpl
def register_layers(register):
    register(MyGRU)
"""


def test_check_plugins_prints_the_missing_cases_once(tmp_path):
    site = make_distribution(tmp_path / "site", "lamina-caseless", "0.1", {unique("lamina_caseless"): CASELESS})
    result = run_python("-m", "lamina", "check-plugins", "MyGRU", pythonpath=site)
    assert result.returncode == 1
    assert "Failed (1):" in result.stdout
    assert result.stdout.count("conformance_cases = [Case(") == 1
    assert "lamina-caseless:MyGRU cases: MyGRU() needs constructor arguments" in result.stdout


# -- checks helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, kwargs, message", [
    ((2, 5), {"ndim": 3}, "Block needs an input with 3 axes, got shape (2, 5)"),
    ((2, 5, 8), {"last": 16}, "Block needs an input with a last axis of size 16, got shape (2, 5, 8)"),
    ((2, 5, 8), {"ndim": 3, "last": 4},
     "Block needs an input with 3 axes and a last axis of size 4, got shape (2, 5, 8)"),
    ((), {"last": 4}, "Block needs an input with a last axis of size 4, got shape ()"),
])
def test_input_shape_names_the_owner_what_it_needs_and_what_came(shape, kwargs, message):
    with pytest.raises(lamina.ShapeError) as err:
        lamina.checks.input_shape(np.zeros(shape), "Block", **kwargs)
    assert str(err.value).startswith(message)


def test_input_shape_accepts_what_fits():
    assert lamina.checks.input_shape(np.zeros((2, 5, 8)), "Block", ndim=3, last=8) is None
    assert lamina.checks.input_shape(np.zeros((2, 5, 8)), "Block") is None


@pytest.mark.parametrize("value, kwargs, message", [
    ((0.9, 1.0), {}, "Lion(betas=(0.9, 1.0)): betas[1] must be a number in [0, 1), got 1.0 (float)"),
    ((0.9,), {}, "Lion(betas=(0.9,)): betas must be a pair of numbers, got (0.9,) (tuple); pass e.g. "
                 "Lion(betas=(0.9, 0.999))"),
    (0.9, {}, "Lion(betas=0.9): betas must be a pair of numbers"),
    ((1, -2, 3), {"count": 3, "each": lamina.checks.positive_number},
     "Lion(betas=(1, -2, 3)): betas[1] must be a positive number, got -2 (int)"),
    ((0.5, True), {}, "Lion(betas=(0.5, True)): betas[1] must be a number in [0, 1), got True (bool)"),
    ([], {"count": None}, "Lion(betas=[]): betas must be one or more numbers"),
])
def test_numbers_shows_the_whole_tuple(value, kwargs, message):
    with pytest.raises(lamina.ArgumentError) as err:
        lamina.checks.numbers(value, "betas", "Lion", **kwargs)
    assert str(err.value).startswith(message)


def test_numbers_returns_each_number_converted():
    assert lamina.checks.numbers([0.9, 0.99], "betas", "Lion") == (0.9, 0.99)
    assert lamina.checks.numbers((1, 2, 3), "sizes", "Pool", count=None, each=lamina.checks.positive_int) == (1, 2, 3)


def test_adam_reports_its_betas_whole():
    with pytest.raises(lamina.ArgumentError, match=r"Adam\(betas=\(0\.9, 1\.0\)\): betas\[1\] must be"):
        lamina.optimizer("Adam", betas=(0.9, 1.0))


def test_a_layer_taking_a_list_that_makes_nan_is_reported_not_a_crash():
    class NanMerge(lamina.Layer):
        keeps = ()
        conformance_cases = [Case({}, (4, 3), input=lambda g, shape: [g.normal(size=shape), g.normal(size=shape)])]

        def forward(self, xs):
            return np.log(-np.abs(xs[0])) + xs[1]  # log of a negative number: NaN

        def backward(self, grad):
            return [grad, grad]

    results = check_plugin(NanMerge)
    failed = [r for r in results if r.ok is False]
    assert failed and any("not finite" in r.detail for r in failed), [str(r) for r in results]
