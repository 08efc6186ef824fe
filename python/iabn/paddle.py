"""In-Place Activated BatchNorm for PaddlePaddle 3: ``InPlaceABN`` (a ``paddle.nn.Layer``),
``inplace_abn`` and their synchronized versions (``paddle.distributed``), the op Paddle had as
``fluid.layers.inplace_abn`` until 2.4.

Paddle's conventions (momentum, biased running variance, ``BatchNorm2D``'s parameter names), a
``PyLayer`` over iabn's C++ kernels, dynamic mode and CPU tensors: docs/paddle.md.
"""

try:
    import paddle
    from paddle.autograd import PyLayer
except ImportError as e:  # Paddle is optional for the iabn package: only this module needs it
    raise ImportError("iabn.paddle needs PaddlePaddle 3 (pip install paddlepaddle, or the iabn package's "
                      "'paddle' extra); iabn itself and iabn.torch do not") from e

from . import _iabn

__all__ = ["InPlaceABN", "InPlaceABNSync", "inplace_abn", "inplace_abn_sync", "ACTIVATIONS", "DATA_FORMATS"]

ACTIVATIONS = _iabn.activations()
# Where the channels are: dim 1 (channels first) or the last dim (channels last); ranks 2 to 5.
DATA_FORMATS = {"NC": "first", "NCL": "first", "NCHW": "first", "NCDHW": "first",
                "NLC": "last", "NHWC": "last", "NDHWC": "last"}

_DTYPES = {paddle.float32: "f32", paddle.float64: "f64", paddle.float16: "f16", paddle.bfloat16: "bf16"}
_HALF = (paddle.float16, paddle.bfloat16)


def _no_sot(recursive=False):
    pass


# Under ``paddle.jit.to_static``'s default mode (SOT, which translates Python bytecode), a call of
# this in a function makes SOT run that function (and, recursive, what it calls) eagerly, as
# ordinary Python (a graph break), instead of translating it: iabn's kernels work on the tensors'
# memory, which only eager execution has. A no-op elsewhere. (SOT recognizes the function itself:
# it must be called directly by the function to run eagerly.)
try:
    from paddle.jit.sot.psdb import fallback as _eager_under_sot
except ImportError:  # a Paddle without SOT
    _eager_under_sot = _no_sot


def _activation(act):
    """iabn's activation name for Paddle's ``act`` (None: identity)."""
    name = "identity" if act is None else act
    if not isinstance(name, str):
        raise TypeError(f"iabn.paddle: act must be a str or None, got {type(act).__name__}")
    if name == "relu":
        raise ValueError("iabn.paddle: act='relu' is not supported: relu cannot be inverted (its negative inputs "
                         "are lost), and InPlace-ABN recovers the activation's input from its output; use "
                         "'leaky_relu' (e.g. act_alpha=0.01) or 'elu'")
    if name not in ACTIVATIONS:
        raise ValueError(f"iabn.paddle: act must be one of {', '.join(ACTIVATIONS)} or None, got {act!r}")
    return name


def _dtype(t, what):
    try:
        return _DTYPES[t.dtype]
    except KeyError:
        raise TypeError(f"iabn.paddle: {what} must be float32, float64, float16 or bfloat16, got {t.dtype}") from None


def _check_place(t, what):
    if not t.place.is_cpu_place():
        raise ValueError(f"iabn.paddle: {what} is on {t.place}: only CPU tensors are supported so far (iabn's CUDA "
                         f"kernels have not been run from Paddle yet)")


def _layout(x, data_format):
    """iabn's layout for x, and x's shape in memory order (Paddle's shape as is)."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"iabn.paddle: data_format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
    if x.ndim < 2 or x.ndim > 5:
        raise ValueError(f"iabn.paddle: expected an input of rank 2 to 5, got rank {x.ndim} {x.shape}")
    if not x.is_contiguous():
        raise ValueError("iabn.paddle: the input must be contiguous (a strided view such as a transpose would be "
                         "copied, and the result would not be in place): call .contiguous() first")
    channels_last = DATA_FORMATS[data_format] == "last" and x.ndim > 2
    return ("nhwc" if channels_last else "nchw"), list(x.shape), (x.shape[-1] if channels_last else x.shape[1])


def _ref(t, shape=None):
    """The binding's view of a tensor (None: absent)."""
    if t is None:
        return None
    return (t.data_ptr(), _dtype(t, "a tensor"), list(t.shape if shape is None else shape), "cpu")


def _state_dtype(x):
    """The dtype of the per-channel tensors for an input x."""
    return paddle.float64 if x.dtype == paddle.float64 else paddle.float32


def _check_channel(t, name, x, channels):
    if t is None:
        return
    if not isinstance(t, paddle.Tensor):
        raise TypeError(f"iabn.paddle: {name} must be a paddle.Tensor or None, got {type(t).__name__}")
    _check_place(t, name)
    want = _state_dtype(x)
    if t.dtype != want:
        rule = ("16-bit inputs take float32 per-channel tensors (as under paddle.amp.auto_cast)" if x.dtype in _HALF
                else "per-channel tensors have the input's dtype")
        raise ValueError(f"iabn.paddle: {name} is {t.dtype} for a {x.dtype} input, expected {want}: {rule}")
    if list(t.shape) != [channels]:
        raise ValueError(f"iabn.paddle: {name} must have shape [{channels}] (the input's channels), got {t.shape}")
    if not t.is_contiguous():
        raise ValueError(f"iabn.paddle: {name} must be contiguous (a strided view is read and written through its "
                         f"data pointer)")


def _options(settings, layout, batch_stats):
    """The binding's Options. ``momentum`` is Paddle's, which is iabn's: the running value's weight."""
    activation, alpha, epsilon, momentum = settings
    return (activation, alpha, epsilon, momentum, layout, batch_stats, False, False, False, 0, 0, 0, True)


class _AllGather:
    """The exchange of a synchronized pass: this process's partials (float64 [2C + 1], filled by
    one of iabn's *_partials) gathered from every process of the group into float64 [P, 2C + 1],
    in rank order, with ``paddle.distributed.all_gather``."""

    def __init__(self, group):
        self.group = group

    def __call__(self, channels, fill):
        partials = paddle.empty([_iabn.sync_partials_size(channels)], dtype="float64")
        fill(_ref(partials))
        rows = []
        paddle.distributed.all_gather(rows, partials, group=self.group)
        return paddle.stack(rows)


def _exchange(group, batch_stats):
    """The all-gather of a synchronized call, or None where there is nothing to exchange: global
    statistics, no initialized parallel environment, or a group of one process."""
    if not batch_stats or not paddle.distributed.is_initialized():
        return None
    size = paddle.distributed.get_world_size(group) if group is not None else paddle.distributed.get_world_size()
    return _AllGather(group) if size > 1 else None


class _InPlaceABN(PyLayer):
    """The in-place forward and the backward from the output, over iabn's kernels. Tensors that
    need no gradient (``stop_gradient``) get None, as PyLayer requires."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, batch_stats, settings, layout, shape, track,
                exchange):
        C = x.shape[-1] if layout == "nhwc" else x.shape[1]
        stat = _state_dtype(x)
        saved_mean = paddle.empty([C], dtype=stat) if batch_stats else None
        saved_invstd = paddle.empty([C], dtype=stat) if batch_stats else None
        rm, rv = running_mean, running_var
        if batch_stats and rm is None:  # batch statistics with no running ones to update
            rm, rv = paddle.zeros([C], dtype=stat), paddle.ones([C], dtype=stat)
        state = tuple(_ref(t) for t in (weight, bias, rm, rv, saved_mean, saved_invstd))
        xr, options = _ref(x, shape), _options(settings, layout, batch_stats)
        if exchange is None:
            _iabn.forward(xr, state, options)
        else:  # every process's partials, then the statistics of the whole batch
            gathered = exchange(C, lambda partials: _iabn.forward_partials(xr, partials, options))
            _iabn.forward_finish(xr, state, _ref(gathered), options)
        # The output is x. A leaf that needs no gradient (a data tensor) cannot be a PyLayer's
        # in-place output (Paddle refuses in-place changes of leaves): it gets a second tensor
        # over the same memory, and x's version is bumped as an in-place change bumps it.
        z = x
        if x.is_leaf and x.stop_gradient:
            z = paddle.utils.dlpack.from_dlpack(paddle.utils.dlpack.to_dlpack(x))
            x._bump_inplace_version()
        ctx.settings, ctx.layout, ctx.shape, ctx.batch_stats, ctx.track = settings, layout, shape, batch_stats, track
        ctx.exchange, ctx.channels = exchange, C
        ctx.needs = [t is not None and not t.stop_gradient for t in (x, weight, bias)]
        # backward returns a gradient or None for each tensor argument, in order.
        ctx.given = [t is not None for t in (x, weight, bias, running_mean, running_var)]
        ctx.save_for_backward(z, weight, bias, saved_invstd if batch_stats else running_var)
        return z

    @staticmethod
    def backward(ctx, dz):
        z, weight, bias, stats = ctx.saved_tensor()
        # A changed z would give wrong gradients silently: PyLayer does not check what it saved.
        if z.inplace_version != ctx.track["version"]:
            raise RuntimeError("iabn.paddle: the output of inplace_abn was modified by an inplace operation before "
                               "the backward, which recovers the activation's input from it; clone it first")
        # dx is written over a copy of dz: Paddle hands the same tensor to z's hooks.
        dx = dz.clone()
        if not dx.is_contiguous():
            dx = dx.contiguous()
        stat = stats.dtype
        weight_grad = paddle.empty(weight.shape, dtype=stat) if ctx.needs[1] else None
        bias_grad = paddle.empty(bias.shape, dtype=stat) if ctx.needs[2] else None
        batch_stats = ctx.batch_stats
        state = tuple(_ref(t) for t in (weight, bias, None, None if batch_stats else stats, None,
                                        stats if batch_stats else None))
        zr, dxr, grads = _ref(z, ctx.shape), _ref(dx, ctx.shape), (_ref(weight_grad), _ref(bias_grad))
        options = _options(ctx.settings, ctx.layout, batch_stats)
        if ctx.exchange is None:
            _iabn.backward(zr, dxr, state, grads, options)
        else:
            # Parameter gradients: this process's own (backward_partials); dx: with every
            # process's sums (backward_finish).
            gathered = ctx.exchange(ctx.channels,
                                    lambda partials: _iabn.backward_partials(zr, dxr, state, grads, partials, options))
            _iabn.backward_finish(zr, dxr, state, _ref(gathered), options)
        grads = (dx if ctx.needs[0] else None, weight_grad, bias_grad, None, None)
        return tuple(g for g, given in zip(grads, ctx.given) if given)


def _apply(x, running_mean, running_var, weight, bias, training, momentum, epsilon, act, act_alpha, data_format,
           use_global_stats, sync, group=None):
    if not paddle.in_dynamic_mode():
        raise RuntimeError("iabn.paddle: inplace_abn runs in dynamic mode only: it calls iabn's kernels on the "
                           "tensors' memory, which a static program (paddle.jit.to_static, paddle.static) does not "
                           "have; keep the layer out of to_static, or use BatchNorm + activation there")
    if not isinstance(x, paddle.Tensor):
        raise TypeError(f"iabn.paddle: x must be a paddle.Tensor, got {type(x).__name__}")
    activation = _activation(act)
    _dtype(x, "x")
    _check_place(x, "x")
    layout, shape, channels = _layout(x, data_format)
    if (running_mean is None) != (running_var is None):
        raise ValueError("iabn.paddle: running_mean and running_var must both be given or both be None")
    for t, n in ((weight, "weight"), (bias, "bias"), (running_mean, "running_mean"), (running_var, "running_var")):
        _check_channel(t, n, x, channels)
    global_stats = (not training) if use_global_stats is None else bool(use_global_stats)
    if global_stats and running_mean is None:
        raise ValueError("iabn.paddle: use_global_stats (or training=False) needs running_mean and running_var")
    batch_stats = not global_stats
    if not x.stop_gradient and x.is_leaf:
        raise ValueError("iabn.paddle: x is a leaf tensor that needs its gradient (stop_gradient=False), which "
                         "Paddle does not let an in-place operation overwrite; InPlace-ABN writes its output "
                         "over x: pass the output of another operation, or a copy")
    settings = (activation, float(act_alpha), float(epsilon), float(momentum))
    track = {}
    exchange = _exchange(group, batch_stats) if sync else None
    z = _InPlaceABN.apply(x, weight, bias, running_mean, running_var, batch_stats, settings, layout, shape, track,
                          exchange)
    track["version"] = z.inplace_version
    return z


def inplace_abn(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.9, epsilon=1e-5,
                act=None, act_alpha=1.0, data_format="NCHW", use_global_stats=None, name=None):
    """x becomes act(batch_norm(x)); returns the output, which shares x's memory.

    As ``paddle.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training,
    momentum, epsilon, data_format, use_global_stats)`` followed by the activation, with Paddle's
    conventions (``running = momentum * running + (1 - momentum) * batch``, the biased batch
    variance). ``act`` and ``act_alpha`` are ``fluid.layers.inplace_abn``'s, with its defaults:
    ``act=None`` is identity; ``"leaky_relu"`` (slope ``act_alpha``) and ``"elu"`` (alpha
    ``act_alpha``) are the others. Batch statistics unless ``use_global_stats`` (``None``: the
    running statistics when not ``training``); with batch statistics the running ones, if given,
    are updated in place. ``weight``/``bias`` None: scale 1, shift 0. ``name`` is accepted for
    Paddle's API shape and unused.
    """
    _eager_under_sot(recursive=True)
    return _apply(x, running_mean, running_var, weight, bias, training, momentum, epsilon, act, act_alpha,
                  data_format, use_global_stats, sync=False)


def inplace_abn_sync(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.9,
                     epsilon=1e-5, act=None, act_alpha=1.0, data_format="NCHW", use_global_stats=None, group=None,
                     name=None):
    """``inplace_abn`` with the batch statistics of every process of ``group`` (a
    ``paddle.distributed`` group; None: all processes) together.

    With batch statistics and an initialized parallel environment of more than one process, the
    forward normalizes ``x`` with the mean and variance of the concatenation of every process's
    ``x`` (batches may differ in size), and the running statistics are updated with them (the
    same values on every process); the backward gives ``dx`` of the sum of every process's loss,
    and the parameter gradients of this process's own loss (``paddle.DataParallel`` reduces
    those). Each pass all-gathers 2C + 1 float64 values per process: every process of the group
    must call it, in the same order as its other collectives. Otherwise it is ``inplace_abn``.
    """
    _eager_under_sot(recursive=True)
    return _apply(x, running_mean, running_var, weight, bias, training, momentum, epsilon, act, act_alpha,
                  data_format, use_global_stats, sync=True, group=group)


class InPlaceABN(paddle.nn.Layer):
    """BatchNorm over the channels of a rank 2-5 input, then an invertible activation, in place.

    ``InPlaceABN(C)`` computes what ``paddle.nn.Sequential(paddle.nn.BatchNorm2D(C),
    paddle.nn.LeakyReLU(0.01))`` computes, writing the result over its input, and keeps about half
    the memory for backward. Its parameters carry ``BatchNorm2D``'s names (``weight``, ``bias``,
    ``_mean``, ``_variance``; the last two with ``stop_gradient=True``), so a BatchNorm2D
    checkpoint loads. ``act``: "leaky_relu" (default, slope ``act_alpha=0.01``: what follows a
    convolution, as in mapillary's InPlace-ABN), "elu" or "identity"/None; relu is refused (it
    cannot be inverted). ``data_format``: where the channels are, first ("NC", "NCL", "NCHW",
    "NCDHW") or last ("NLC", "NHWC", "NDHWC"), for any rank from 2 to 5. ``weight_attr``,
    ``bias_attr``: ``paddle.ParamAttr`` as for ``BatchNorm2D``; False: a fixed scale of 1 or
    shift of 0. The parameters take ``paddle.get_default_dtype()``: float32 layers take float32
    inputs and 16-bit ones (``paddle.amp.auto_cast``); float64 inputs need a float64 layer.
    """

    def __init__(self, num_channels, act="leaky_relu", act_alpha=0.01, momentum=0.9, epsilon=1e-5,
                 data_format="NCHW", use_global_stats=None, weight_attr=None, bias_attr=None, name=None):
        super().__init__()
        self._act = _activation(act)
        if data_format not in DATA_FORMATS:
            raise ValueError(f"iabn.paddle: data_format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
        self._num_channels = num_channels
        self._act_alpha = act_alpha
        self._momentum = momentum
        self._epsilon = epsilon
        self._data_format = data_format
        self._use_global_stats = use_global_stats
        self._sync, self._group = False, None
        dtype = paddle.get_default_dtype()
        const = paddle.nn.initializer.Constant

        def parameter(attr, value):
            if attr is False:  # fixed, as BatchNorm2D: a constant that takes no gradient
                p = self.create_parameter(attr=None, shape=[num_channels], dtype=dtype,
                                          default_initializer=const(value))
                p.stop_gradient = True
                return p
            return self.create_parameter(attr=attr, shape=[num_channels], dtype=dtype,
                                         default_initializer=const(value))

        self.weight = parameter(weight_attr, 1.0)
        self.bias = parameter(bias_attr, 0.0)
        stats = paddle.ParamAttr(initializer=const(0.0), trainable=False, do_model_average=True)
        self._mean = self.create_parameter(attr=stats, shape=[num_channels], dtype=dtype)
        self._mean.stop_gradient = True
        stats = paddle.ParamAttr(initializer=const(1.0), trainable=False, do_model_average=True)
        self._variance = self.create_parameter(attr=stats, shape=[num_channels], dtype=dtype)
        self._variance.stop_gradient = True

    def forward(self, x):
        _eager_under_sot(recursive=True)
        return _apply(x, self._mean, self._variance, self.weight, self.bias, self.training, self._momentum,
                      self._epsilon, self._act, self._act_alpha, self._data_format, self._use_global_stats,
                      sync=self._sync, group=self._group)

    def extra_repr(self):
        return (f"num_channels={self._num_channels}, act={self._act}, act_alpha={self._act_alpha}, "
                f"momentum={self._momentum}, epsilon={self._epsilon}, data_format={self._data_format}")


class InPlaceABNSync(InPlaceABN):
    """``InPlaceABN`` whose batch statistics are those of every process of ``group`` together
    (synchronized batch norm, as ``paddle.nn.SyncBatchNorm``): ``inplace_abn_sync``. ``group``: a
    ``paddle.distributed`` group, None for all processes. Without an initialized parallel
    environment of several processes, or with global statistics, it is ``InPlaceABN``. The same
    arguments (and ``group``), parameter names and dtype rules as ``InPlaceABN``."""

    def __init__(self, num_channels, act="leaky_relu", act_alpha=0.01, momentum=0.9, epsilon=1e-5,
                 data_format="NCHW", use_global_stats=None, weight_attr=None, bias_attr=None, group=None, name=None):
        super().__init__(num_channels, act, act_alpha, momentum, epsilon, data_format, use_global_stats, weight_attr,
                         bias_attr, name)
        self._sync, self._group = True, group
