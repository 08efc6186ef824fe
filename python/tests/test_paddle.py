"""iabn.paddle against Paddle's own float64 batch_norm + activation.

Every comparison is with paddle.nn.functional in float64 (an independent implementation of the
same math): outputs, running statistics (Paddle's momentum, the biased variance), dx, dweight and
dbias, over ranks 2 to 5 in both data formats, every activation, training and eval; float16 and
bfloat16 inputs with float32 state within bounds from their unit roundoff. Where Paddle's own
float64 backward is not the gradient of its forward (training=False with use_global_stats=False:
batch statistics in eval), the reference is the analytic gradient, written out here in numpy.
Then what the package promises beyond the math: BatchNorm2D checkpoints, the output in x's memory,
frozen parameters, a gradient a hook holds, to_static, and errors in Python's terms.

Inputs are fresh random draws each run (the seed is in every failure message).
"""

import os
import random

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
import paddle.nn.functional as F  # noqa: E402

from iabn.paddle import InPlaceABN, inplace_abn  # noqa: E402

SEED = int(os.environ.get("IABN_TEST_SEED", random.SystemRandom().randrange(2**31)))
RNG = np.random.default_rng(SEED)
paddle.seed(SEED)

# Logical shapes (N, C, spatial...) per rank; channels-last formats take the channels last.
SHAPES = {2: (12, 5), 3: (4, 5, 7), 4: (3, 5, 4, 6), 5: (2, 5, 3, 4, 3)}
FORMATS = {2: ("NC",), 3: ("NCL", "NLC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}
ACTIVATIONS = [(None, 1.0), ("leaky_relu", 0.01), ("leaky_relu", 0.3), ("elu", 1.0), ("elu", 0.5)]
DTYPES = ["float32", "float64", "float16", "bfloat16"]
# Unit roundoff of each dtype; results are compared norm-wise within a multiple of it.
UNIT = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def tolerance(dtype, factor):
    # float64: the two implementations round differently in every sum (~1e-12 at these sizes).
    return max(factor * UNIT[dtype], 1e-11)


def shape_of(rank, data_format):
    s = SHAPES[rank]
    return s if data_format[1] == "C" else (s[0], *s[2:], s[1])


def channels_last(data_format):
    return data_format[1] != "C"


def activate(y, act, alpha):
    if act == "leaky_relu":
        return F.leaky_relu(y, alpha)
    if act == "elu":
        return F.elu(y, alpha)
    return y


def as_numpy(t):
    return t.astype("float64").numpy()


def rel_error(actual, expected):
    a, e = as_numpy(actual) if isinstance(actual, paddle.Tensor) else actual, expected
    e = as_numpy(e) if isinstance(e, paddle.Tensor) else e
    denom = np.linalg.norm(e)
    return np.linalg.norm(a - e) / (denom if denom > 0 else 1.0)


def check(actual, expected, tol, what):
    err = rel_error(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g} (IABN_TEST_SEED={SEED})"


def draw(shape, dtype):
    """x drawn in float64 and stored in dtype; returns (x in dtype, the same values in float64)."""
    x64 = paddle.to_tensor(RNG.normal(0.4, 1.7, size=shape))
    x = x64.astype(dtype)
    return x, x.astype("float64")


def state(C, dtype):
    """weight, bias, running mean and variance in the per-channel dtype of an input of `dtype`."""
    stat = "float64" if dtype == "float64" else "float32"
    return [paddle.to_tensor(v).astype(stat) for v in (RNG.uniform(0.5, 1.5, C), RNG.normal(0, 0.5, C),
                                                       RNG.normal(0, 0.3, C), RNG.uniform(0.5, 2.0, C))]


def run_iabn(x, w, b, rm, rv, g, **kw):
    """iabn.paddle's forward and backward of sum(z * g): z, dx, dweight, dbias (x is consumed)."""
    src = x.clone()
    src.stop_gradient = False
    w, b = w.clone(), b.clone()
    w.stop_gradient = b.stop_gradient = False
    z = inplace_abn(src * 1.0, rm, rv, w, b, **kw)  # (a non-leaf input, as after a convolution)
    z_values = z.clone()
    (z.astype("float64") * g).sum().backward()
    return z_values, src.grad, w.grad, b.grad


def run_reference(x64, w, b, rm, rv, g, act, act_alpha, **kw):
    """Paddle's float64 batch_norm + activation, and its gradients."""
    x64 = x64.clone()
    x64.stop_gradient = False
    w64, b64 = w.astype("float64"), b.astype("float64")
    w64.stop_gradient = b64.stop_gradient = False
    y = activate(F.batch_norm(x64, rm, rv, w64, b64, **kw), act, act_alpha)
    (y * g).sum().backward()
    return y, x64.grad, w64.grad, b64.grad


CASES = [(r, f, a, d) for r in SHAPES for f in FORMATS[r] for a in ACTIVATIONS for d in DTYPES]


@pytest.mark.parametrize("rank,data_format,activation,dtype", CASES)
def test_training_matches_paddle_float64(rank, data_format, activation, dtype):
    act, alpha = activation
    shape = shape_of(rank, data_format)
    C = shape[-1] if channels_last(data_format) and rank > 2 else shape[1]
    x, x64 = draw(shape, dtype)
    w, b, rm, rv = state(C, dtype)
    rm64, rv64 = rm.astype("float64"), rv.astype("float64")
    g = paddle.to_tensor(RNG.normal(size=shape))
    z, dx, dw, db = run_iabn(x, w, b, rm, rv, g, training=True, momentum=0.8, epsilon=1e-4, act=act,
                             act_alpha=alpha, data_format=data_format)
    y, dx_ref, dw_ref, db_ref = run_reference(x64, w, b, rm64, rv64, g, act, alpha, training=True, momentum=0.8,
                                              epsilon=1e-4, data_format=data_format)
    assert z.dtype == x.dtype and dx.dtype == x.dtype
    check(z, y, tolerance(dtype, 8), "z")
    # Running statistics: Paddle keeps momentum as a float32 attribute (f64 agrees to ~1e-8).
    stat_tol = max(tolerance(dtype, 8), 1e-7) if dtype in ("float32", "float64") else 1e-5
    check(rm, rm64, stat_tol, "running mean")
    check(rv, rv64, stat_tol, "running variance")
    # The backward recovers x from the stored z: 16-bit z carries its rounding into the gradients.
    check(dx, dx_ref, tolerance(dtype, 64), "dx")
    check(dw, dw_ref, tolerance(dtype, 64), "dweight")
    check(db, db_ref, tolerance(dtype, 64), "dbias")


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("use_global_stats", [None, True])
@pytest.mark.parametrize("activation", [("leaky_relu", 0.1), ("elu", 1.0)])
def test_global_statistics_match_paddle_float64(data_format, use_global_stats, activation):
    """Eval (training=False, use_global_stats None) and use_global_stats=True in training: the
    running statistics normalize, and stay as they were."""
    act, alpha = activation
    shape = shape_of(4, data_format)
    x, x64 = draw(shape, "float64")
    w, b, rm, rv = state(5, "float64")
    before = (rm.clone(), rv.clone())
    training = use_global_stats is True
    g = paddle.to_tensor(RNG.normal(size=shape))
    z, dx, dw, db = run_iabn(x, w, b, rm, rv, g, training=training, act=act, act_alpha=alpha,
                             data_format=data_format, use_global_stats=use_global_stats)
    y, dx_ref, dw_ref, db_ref = run_reference(x64, w, b, before[0], before[1], g, act, alpha, training=training,
                                              data_format=data_format, use_global_stats=use_global_stats)
    for actual, expected, what in ((z, y, "z"), (dx, dx_ref, "dx"), (dw, dw_ref, "dweight"), (db, db_ref, "dbias")):
        check(actual, expected, 1e-11, what)
    check(rm, before[0], 0, "running mean (unchanged)")
    check(rv, before[1], 0, "running variance (unchanged)")


def analytic_batch_stats(x, w, b, g, eps, act, alpha, axes):
    """Batch-statistics batch norm + activation and its exact gradients, in numpy float64 (the
    reference where Paddle's own backward is not the gradient of its forward)."""
    shape = [1] * x.ndim
    c_axis = [a for a in range(x.ndim) if a not in axes][0]
    shape[c_axis] = -1
    m = x.size / x.shape[c_axis]
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    pre = xhat * w.reshape(shape) + b.reshape(shape)
    if act == "leaky_relu":
        y, dact = np.where(pre >= 0, pre, alpha * pre), np.where(pre >= 0, 1.0, alpha)
    else:
        y, dact = np.where(pre >= 0, pre, alpha * np.expm1(pre)), np.where(pre >= 0, 1.0, alpha * np.exp(pre))
    dy = g * dact
    db = dy.sum(axis=axes)
    dw = (dy * xhat).sum(axis=axes)
    dxhat = dy * w.reshape(shape)
    dx = invstd * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                   - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True) / m)
    return y, dx, dw, db, mean.reshape(-1), var.reshape(-1)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("activation", [("leaky_relu", 0.1), ("elu", 1.0)])
def test_batch_statistics_in_eval_match_the_analytic_gradient(data_format, activation):
    """training=False, use_global_stats=False: batch statistics, running ones updated (Paddle's
    forward), and the true gradient (Paddle's float64 backward differs from it there)."""
    act, alpha = activation
    shape = shape_of(4, data_format)
    x, x64 = draw(shape, "float64")
    w, b, rm, rv = state(5, "float64")
    rm0, rv0 = rm.numpy().copy(), rv.numpy().copy()
    g = RNG.normal(size=shape)
    z, dx, dw, db = run_iabn(x, w, b, rm, rv, paddle.to_tensor(g), training=False, use_global_stats=False,
                             momentum=0.9, epsilon=1e-5, act=act, act_alpha=alpha, data_format=data_format)
    axes = (0, 1, 2) if channels_last(data_format) else (0, 2, 3)
    y, dx_ref, dw_ref, db_ref, mean, var = analytic_batch_stats(x64.numpy(), w.numpy(), b.numpy(), g, 1e-5, act,
                                                                alpha, axes)
    y_paddle = activate(F.batch_norm(x64, paddle.to_tensor(rm0), paddle.to_tensor(rv0), w, b, training=False,
                                     data_format=data_format, use_global_stats=False), act, alpha)
    check(z, y, 1e-11, "z")
    check(z, y_paddle, 1e-11, "z (Paddle's forward)")
    for actual, expected, what in ((dx, dx_ref, "dx"), (dw, dw_ref, "dweight"), (db, db_ref, "dbias")):
        check(actual, expected, 1e-11, what)
    check(rm, 0.9 * rm0 + 0.1 * mean, 1e-12, "running mean")
    check(rv, 0.9 * rv0 + 0.1 * var, 1e-12, "running variance (biased)")


def test_layer_follows_batchnorm2d_and_leaky_relu_and_loads_its_checkpoint():
    C = 6
    bn = paddle.nn.BatchNorm2D(C)
    bn.set_state_dict({"weight": paddle.to_tensor(RNG.uniform(0.5, 1.5, C).astype("float32")),
                       "bias": paddle.to_tensor(RNG.normal(size=C).astype("float32")),
                       "_mean": paddle.to_tensor(RNG.normal(size=C).astype("float32")),
                       "_variance": paddle.to_tensor(RNG.uniform(0.5, 2, C).astype("float32"))})
    ref = paddle.nn.Sequential(bn, paddle.nn.LeakyReLU(0.01))
    layer = InPlaceABN(C)
    assert sorted(layer.state_dict()) == sorted(bn.state_dict()) == ["_mean", "_variance", "bias", "weight"]
    assert layer._mean.stop_gradient and layer._variance.stop_gradient
    layer.set_state_dict(bn.state_dict())
    for training in (True, False, True):
        ref.train() if training else ref.eval()
        layer.train() if training else layer.eval()
        x = paddle.to_tensor(RNG.normal(size=(4, C, 5, 3)).astype("float32"))
        expected = ref(x.clone())
        check(layer(x.clone()), expected, 1e-5, f"layer output (training={training})")
        for name in ("_mean", "_variance"):
            check(getattr(layer, name), getattr(bn, name), 1e-6, name)


def test_layer_defaults_and_repr():
    layer = InPlaceABN(4)
    assert layer._act == "leaky_relu" and layer._act_alpha == 0.01 and layer._momentum == 0.9
    assert "leaky_relu" in repr(layer)
    assert InPlaceABN(4, act=None)._act == "identity"


def test_output_is_the_input_memory_and_bumps_its_version():
    x = paddle.to_tensor(RNG.normal(size=(2, 3, 4, 4)).astype("float32"))
    version = x.inplace_version
    z = inplace_abn(x, None, None, training=True)
    assert z.data_ptr() == x.data_ptr()
    assert x.inplace_version > version
    # identity with batch statistics: zero mean, unit (biased) variance per channel
    values = x.numpy()
    np.testing.assert_allclose(values.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(values.var(axis=(0, 2, 3)), 1, rtol=1e-3)


def test_an_earlier_operation_that_saved_the_input_refuses_its_backward():
    a = paddle.to_tensor(RNG.normal(size=(2, 3, 4)).astype("float32"), stop_gradient=False)
    x = F.sigmoid(a)  # saves its output, x
    z = inplace_abn(x, None, None, training=True, act="leaky_relu", act_alpha=0.1)
    with pytest.raises(Exception, match="inplace|version|modified"):
        z.sum().backward()


def test_output_changed_before_backward_is_refused():
    a = paddle.to_tensor(RNG.normal(size=(2, 3, 4)).astype("float32"), stop_gradient=False)
    z = inplace_abn(a * 1.0, None, None, training=True, act="leaky_relu", act_alpha=0.1)
    z.scale_(2.0)
    with pytest.raises(Exception, match="modified by an inplace operation"):
        z.sum().backward()


def test_frozen_parameters_get_no_gradient():
    layer = InPlaceABN(3, weight_attr=False)
    assert layer.weight.stop_gradient
    a = paddle.to_tensor(RNG.normal(size=(2, 3, 4)).astype("float32"), stop_gradient=False)
    layer(a * 1.0).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None and a.grad is not None
    frozen = InPlaceABN(3)
    frozen.bias.stop_gradient = True
    frozen(a * 1.0).sum().backward()
    assert frozen.bias.grad is None and frozen.weight.grad is not None


def test_a_gradient_a_hook_holds_is_not_overwritten():
    a = paddle.to_tensor(RNG.normal(size=(3, 2, 5)).astype("float32"), stop_gradient=False)
    z = inplace_abn(a * 1.0, None, None, training=True, act="elu")
    held = []
    z.register_hook(lambda grad: held.append(grad) or grad)
    g = paddle.to_tensor(RNG.normal(size=(3, 2, 5)).astype("float32"))
    (z * g).sum().backward()
    np.testing.assert_array_equal(held[0].numpy(), g.numpy())


def test_data_tensor_input_and_sixteen_bit_parameters_gradients():
    x = paddle.to_tensor(RNG.normal(size=(2, 3, 4, 4))).astype("float16")  # a data tensor: a leaf, no grad
    layer = InPlaceABN(3)
    z = layer(x)
    assert z.dtype == paddle.float16 and z.data_ptr() == x.data_ptr()
    z.astype("float32").sum().backward()
    assert layer.weight.grad.dtype == paddle.float32


class _Net(paddle.nn.Layer):
    def __init__(self, norm):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 1)
        self.norm = norm

    def forward(self, x):
        return self.norm(self.conv(x)) * 2.0


def test_to_static_runs_the_layer_eagerly_in_sot_mode_and_refuses_full_graph():
    ref = _Net(paddle.nn.Sequential(paddle.nn.BatchNorm2D(3), paddle.nn.LeakyReLU(0.01)))
    net = _Net(InPlaceABN(3))
    net.conv.set_state_dict(ref.conv.state_dict())
    x = paddle.to_tensor(RNG.normal(size=(2, 3, 4, 4)).astype("float32"))
    out = paddle.jit.to_static(net, full_graph=False)(x)
    check(out, ref(x), 1e-5, "to_static (SOT) output")
    out.sum().backward()
    assert net.conv.weight.grad is not None
    with pytest.raises(Exception, match="dynamic mode only"):
        paddle.jit.to_static(_Net(InPlaceABN(3)), full_graph=True)(x)


def bad(**kw):
    args = {"x": paddle.to_tensor(RNG.normal(size=(2, 3, 4)).astype("float32")), "running_mean": None,
            "running_var": None, "training": True}
    args.update(kw)
    return lambda: inplace_abn(**args)


@pytest.mark.parametrize("call,error,message", [
    (lambda: InPlaceABN(3, act="relu"), ValueError, "relu cannot be inverted"),
    (lambda: InPlaceABN(3, act="gelu"), ValueError, "act must be one of"),
    (lambda: InPlaceABN(3, data_format="NWC"), ValueError, "data_format must be one of"),
    (bad(act=1), TypeError, "act must be a str"),
    (bad(x=paddle.ones([2, 3], dtype="int32")), TypeError, "float32, float64, float16 or bfloat16"),
    (bad(x=paddle.ones([6])), ValueError, "rank 2 to 5"),
    (bad(x=paddle.ones([2, 3, 1, 1, 1, 2])), ValueError, "rank 2 to 5"),
    (bad(x=paddle.ones([2, 4, 3]).transpose([0, 2, 1])), ValueError, "contiguous"),
    (bad(x=paddle.ones([2, 3, 4], dtype="float64"), weight=paddle.ones([3])), ValueError, "expected paddle.float64"),
    (bad(x=paddle.ones([2, 3, 4], dtype="float16"), weight=paddle.ones([3], dtype="float16")), ValueError,
     "16-bit inputs take float32"),
    (bad(weight=paddle.ones([4])), ValueError, r"shape \[3\]"),
    (bad(weight=paddle.ones([3, 2])[:, 0]), ValueError, "contiguous"),
    (bad(running_mean=paddle.zeros([3])), ValueError, "both be given"),
    (bad(training=False), ValueError, "needs running_mean and running_var"),
    (bad(x=paddle.to_tensor(np.ones((2, 3, 4), "float32"), stop_gradient=False)), ValueError, "leaf tensor"),
    (bad(x=np.ones((2, 3, 4), "float32")), TypeError, "paddle.Tensor"),
    (bad(weight=np.ones(3, "float32")), TypeError, "paddle.Tensor or None"),
    (bad(epsilon=0.0), ValueError, "epsilon"),
    (bad(act="elu", act_alpha=-1.0), ValueError, "activation_param"),
])
def test_bad_input_is_a_python_error_and_leaves_x_as_it_was(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_refused_call_writes_nothing():
    x = paddle.to_tensor(RNG.normal(size=(2, 3, 4)).astype("float32"))
    before = x.numpy().copy()
    rm, rv = paddle.zeros([3]), paddle.ones([3])
    with pytest.raises(ValueError):
        inplace_abn(x, rm, rv, training=True, epsilon=-1.0)
    np.testing.assert_array_equal(x.numpy(), before)
    np.testing.assert_array_equal(rm.numpy(), 0)
    np.testing.assert_array_equal(rv.numpy(), 1)


def test_memory_example_keeps_at_most_0_6x_of_batchnorm2d_and_leaky_relu():
    """examples/python/paddle_train_memory.py, small: the losses follow BatchNorm2D + LeakyReLU's
    and at most 0.6x the memory is kept for backward (it exits with 1 otherwise)."""
    import pathlib
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "paddle_train_memory.py"
    run = subprocess.run([sys.executable, str(example), "--steps", "2", "--batch", "4", "--size", "32"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "InPlaceABN keeps at most 0.6x: yes" in run.stdout


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sixteen_bit_input_under_auto_cast(dtype):
    """A float32 layer inside paddle.amp.auto_cast takes the 16-bit activations it is handed (on
    the CPU, Paddle 3.3.1's auto_cast leaves convolutions in float32, so the input is cast here)."""
    layer = InPlaceABN(3)
    x, x64 = draw((4, 3, 5), dtype)
    with paddle.amp.auto_cast(level="O1", dtype=dtype):
        z = layer(x)
    assert z.dtype == x.dtype and layer._mean.dtype == paddle.float32
    y = activate(F.batch_norm(x64, paddle.zeros([3], "float64"), paddle.ones([3], "float64"), training=True),
                 "leaky_relu", 0.01)
    check(z, y, tolerance(dtype, 8), "z under auto_cast")


def test_the_package_runs_its_native_extension():
    import iabn

    assert iabn._iabn.__file__.endswith(".so")
    assert iabn.kernel_target().startswith(("x86-64", "arm-64"))
