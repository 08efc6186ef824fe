"""In-Place Activated BatchNorm for PyTorch: ``InPlaceABN`` (a module), ``inplace_abn`` and their
synchronized versions ``InPlaceABNSync`` and ``inplace_abn_sync`` (``torch.distributed``).

A drop-in replacement for ``BatchNorm{1,2,3}d`` followed by an invertible activation, with torch's
conventions, that writes its output over its input and keeps about half the memory for backward.
The rules of writing in place, the dtypes and devices it takes: docs/pytorch.md.
"""

try:
    import torch
    import torch.distributed as dist
    from torch import nn
except ImportError as e:  # PyTorch is optional for the iabn package: only this module needs it
    raise ImportError("iabn.torch needs PyTorch (pip install torch, or the iabn package's 'torch' extra); iabn "
                      "itself and iabn.paddle do not") from e

from . import _iabn

__all__ = ["InPlaceABN", "InPlaceABNSync", "inplace_abn", "inplace_abn_sync", "ACTIVATIONS"]

ACTIVATIONS = _iabn.activations()

_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}
_HALF = (torch.float16, torch.bfloat16)


def _dtype(t):
    try:
        return _DTYPES[t.dtype]
    except KeyError:
        raise ValueError(f"iabn: expected a float32, float64, float16 or bfloat16 tensor, got {t.dtype}") from None


def _kernel_state_dtype(dtype):
    """The dtype of the per-channel buffers iabn's kernels take for tensors of `dtype`."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_state_dtypes(x, **state):
    """The module docstring's dtype rule for the per-channel tensors of an input x."""
    _dtype(x)
    half = x.dtype in _HALF
    allowed = (torch.float32, x.dtype) if half else (x.dtype,)
    for name, t in state.items():
        if t is None or t.dtype in allowed:
            continue
        if half:
            rule = (f"{x.dtype} inputs take float32 per-channel tensors (weight, bias, running_mean, "
                    f"running_var), as under torch.autocast, or ones of the input's own dtype; keep the "
                    f"module in float32 (call .float() on it)")
        else:
            rule = (f"{x.dtype} inputs take per-channel tensors (weight, bias, running_mean, running_var) of "
                    f"the input's dtype; cast the module (.to({x.dtype})) or the input")
        raise ValueError(f"iabn: {name} has dtype {t.dtype}, the input {x.dtype}: {rule}")


def _as(t, dtype):
    """t in `dtype` (t itself when it already is; None stays None)."""
    return t if t is None or t.dtype == dtype else t.to(dtype)


def _ref(t, shape=None):
    """The binding's view of a tensor (None: absent). Per-channel tensors must be contiguous;
    activation tensors come with their shape in memory order (see _layout)."""
    if t is None:
        return None
    if shape is None and not t.is_contiguous():
        raise ValueError(f"iabn: expected contiguous per-channel tensors, got strides {t.stride()}")
    return (t.data_ptr(), _dtype(t), list(t.shape if shape is None else shape), t.device.type)


def _layout(x):
    """The kernels' layout for x, and x's shape in memory order."""
    if x.dim() < 2 or x.dim() > 5:
        raise ValueError(f"iabn: expected a tensor of rank 2 to 5, got rank {x.dim()} {tuple(x.shape)}")
    if x.is_contiguous():
        return "nchw", list(x.shape)
    for rank, fmt in ((4, torch.channels_last), (5, torch.channels_last_3d)):
        if x.dim() == rank and x.is_contiguous(memory_format=fmt):
            return "nhwc", [x.shape[0], *x.shape[2:], x.shape[1]]
    raise ValueError(
        f"iabn: expected a contiguous tensor, or channels_last (4-D) / channels_last_3d (5-D); got shape "
        f"{tuple(x.shape)} with strides {x.stride()} (a copy would not be in place: call .contiguous() first)"
    )


def _stream(x):
    return torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0


def _on(x):
    """The context iabn's calls on x run in: x's CUDA device current (its CUDA kernels run in it)."""
    return torch.cuda.device(x.device) if x.is_cuda else _nothing()


def _state(weight, bias, running_mean, running_var, saved_mean, saved_invstd):
    """The binding's ChannelState (each tensor may be None)."""
    return tuple(_ref(t) for t in (weight, bias, running_mean, running_var, saved_mean, saved_invstd))


_WORKSPACE_ALIGNMENT = 256  # what iabn asks of Options.workspace


def _options(x, shape, layout, settings, momentum=0.0):
    """The binding's Options for a call on x (viewed as ``shape``; its current CUDA stream), and
    what must stay alive until the call has been enqueued. ``momentum`` in torch's convention (the
    weight of the batch); iabn's weighs the running value. On CUDA the call's scratch comes from
    torch's caching allocator (stream-ordered, like x), so iabn allocates and keeps nothing of its
    own."""
    activation, activation_param, eps, batch_stats, abs_weight = settings
    options = (activation, activation_param, eps, 1.0 - momentum, layout, batch_stats, False, True, abs_weight,
               _stream(x), 0, 0, True)
    if not x.is_cuda:
        return options, None
    # While a CUDA graph is being captured nothing may wait for the stream: the checks that read
    # device values on the host (a zero weight in backward, a negative running variance, the
    # gathered counts) are skipped then.
    capturing = getattr(torch.cuda, "is_current_stream_capturing", lambda: False)()
    need = _iabn.workspace_bytes(_ref(x, shape), options)
    workspace = torch.empty(need + _WORKSPACE_ALIGNMENT, dtype=torch.uint8, device=x.device)
    address = workspace.data_ptr()
    address += (-address) % _WORKSPACE_ALIGNMENT
    return options[:10] + (address, need, not capturing), workspace


class _AllGather:
    """The exchange of a synchronized pass: this process's partials (float64 [2C + 1] on the
    tensor's device, filled by one of iabn's *_partials) gathered from every process of the group
    into float64 [P, 2C + 1], in rank order.

    ``dist.all_gather`` into a list (then stacked) rather than ``all_gather_into_tensor``: the list
    form works on every backend (gloo on CPU and CUDA tensors, NCCL) from torch 1.13 on. On CUDA
    the collective is ordered after the partials' kernel and before the next one on the current
    stream, as torch orders its collectives."""

    def __init__(self, group, size):
        self.group, self.size = group, size

    def __call__(self, like, fill):
        partials = torch.empty(_iabn.sync_partials_size(like.shape[1]), dtype=torch.float64, device=like.device)
        fill(_ref(partials))
        rows = [torch.empty_like(partials) for _ in range(self.size)]
        dist.all_gather(rows, partials, group=self.group)
        return torch.stack(rows)


def _exchange(group, batch_stats):
    """The all-gather of a synchronized layer, or None where there is nothing to exchange: global
    statistics, no initialized process group, or a group of one process."""
    if not batch_stats or not dist.is_available() or not dist.is_initialized():
        return None
    size = dist.get_world_size(group)
    if size < 0:
        raise ValueError("iabn: this process is not a member of the process group given to inplace_abn_sync")
    return _AllGather(group, size) if size > 1 else None


class _InPlaceABNFunction(torch.autograd.Function):
    """inplace_abn and inplace_abn_sync: each pass runs iabn's kernels over the local tensor
    (``exchange`` None), or the two halves of a synchronized pass around ``exchange`` (an
    _AllGather), which gives every process the statistics of the concatenated batch."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, batch_stats, momentum, eps, activation,
                activation_param, abs_weight, exchange):
        layout, shape = _layout(x)
        C = x.shape[1]
        # Per-channel buffers: float64 for float64 inputs, float32 otherwise (16-bit inputs too).
        stat = {"dtype": _kernel_state_dtype(x.dtype), "device": x.device}
        saved_mean = torch.empty(C, **stat) if batch_stats else None
        saved_invstd = torch.empty(C, **stat) if batch_stats else None
        # 16-bit state (a module after .half()): the kernels run on float32 copies.
        w, b, rm, rv = (_as(t, stat["dtype"]) for t in (weight, bias, running_mean, running_var))
        # Batch statistics without running ones (track_running_stats=False): iabn always updates a
        # pair, so it gets a pair of its own.
        if batch_stats and rm is None:
            rm, rv = torch.zeros(C, **stat), torch.ones(C, **stat)
        settings = (activation, activation_param, eps, batch_stats, abs_weight)
        xr, state = _ref(x, shape), _state(w, b, rm, rv, saved_mean, saved_invstd)
        with _on(x):
            options, _workspace = _options(x, shape, layout, settings, momentum)
            if exchange is None:
                _iabn.forward(xr, state, options)
            else:
                gathered = exchange(x, lambda partials: _iabn.forward_partials(xr, partials, options))
                _iabn.forward_finish(xr, state, _ref(gathered), options)
        if batch_stats:  # updated copies of 16-bit running statistics: rounded back
            for own, updated in ((running_mean, rm), (running_var, rv)):
                if own is not None and own is not updated:
                    own.copy_(updated)
        ctx.mark_dirty(x)
        ctx.layout, ctx.shape = layout, shape
        ctx.settings, ctx.exchange = settings, exchange
        # z, and the statistics it was normalized with: saved (batch) or running (global), in the
        # kernels' per-channel dtype.
        ctx.save_for_backward(x, weight, bias, saved_invstd if batch_stats else rv)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dz):
        z, weight, bias, stats = ctx.saved_tensors
        batch_stats = ctx.settings[3]
        # dx is written over a copy of dz laid out as z: autograd may share dz with other
        # functions, or hand over an expanded view.
        dx = torch.empty_like(z)
        dx.copy_(dz)
        # The kernels take and fill per-channel buffers of the statistics' dtype (float32 for
        # 16-bit inputs); the gradients go back in the parameters' own dtype.
        stat = {"dtype": stats.dtype, "device": stats.device}
        w, b = _as(weight, stat["dtype"]), _as(bias, stat["dtype"])
        weight_grad = torch.empty(w.shape, **stat) if weight is not None and ctx.needs_input_grad[1] else None
        bias_grad = torch.empty(b.shape, **stat) if bias is not None and ctx.needs_input_grad[2] else None
        zr, dxr = _ref(z, ctx.shape), _ref(dx, ctx.shape)
        state = _state(w, b, None, None if batch_stats else stats, None, stats if batch_stats else None)
        grads = (_ref(weight_grad), _ref(bias_grad))
        with _on(z):
            options, _workspace = _options(z, ctx.shape, ctx.layout, ctx.settings)
            if ctx.exchange is None:
                _iabn.backward(zr, dxr, state, grads, options)
            else:
                # Parameter gradients: this process's own (backward_partials); dx: with every
                # process's sums (backward_finish).
                gathered = ctx.exchange(z, lambda partials: _iabn.backward_partials(zr, dxr, state, grads, partials,
                                                                                    options))
                _iabn.backward_finish(zr, dxr, state, _ref(gathered), options)
        weight_grad = None if weight_grad is None else weight_grad.to(weight.dtype)
        bias_grad = None if bias_grad is None else bias_grad.to(bias.dtype)
        return dx, weight_grad, bias_grad, None, None, None, None, None, None, None, None, None


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _apply(x, weight, bias, running_mean, running_var, training, momentum, eps, activation, activation_param,
           abs_weight, sync, group=None):
    _iabn.check_activation(activation)
    batch_stats = training or running_mean is None
    if (running_mean is None) != (running_var is None):
        raise ValueError("iabn: running_mean and running_var must both be given or both be None")
    _check_state_dtypes(x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    exchange = _exchange(group, batch_stats) if sync else None
    return _InPlaceABNFunction.apply(x, weight, bias, running_mean, running_var, batch_stats, float(momentum),
                                     float(eps), activation, float(activation_param), bool(abs_weight), exchange)


def inplace_abn(x, weight, bias, running_mean, running_var, training=True, momentum=0.1, eps=1e-5,
                activation="leaky_relu", activation_param=0.01, abs_weight=False):
    """x becomes act(batch_norm(x)); returns x (in place, like ``F.leaky_relu_``).

    As ``F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)`` followed
    by the activation, with torch's conventions: ``momentum`` weighs the new statistics
    (``running = (1 - momentum) * running + momentum * batch``) and the running variance is
    unbiased. Batch statistics are used when ``training`` or when there are no running statistics;
    then the running ones, if given, are updated in place. ``abs_weight``: the scale is
    ``|weight| + eps`` (mapillary's convention) instead of ``weight``. dtypes: the module
    docstring's rule (float16/bfloat16 ``x`` with float32 weight, bias and running statistics, as
    under autocast, or with ones of ``x``'s dtype).
    """
    return _apply(x, weight, bias, running_mean, running_var, training, momentum, eps, activation,
                  activation_param, abs_weight, sync=False)


def inplace_abn_sync(x, weight, bias, running_mean, running_var, training=True, momentum=0.1, eps=1e-5,
                     activation="leaky_relu", activation_param=0.01, abs_weight=False, group=None):
    """``inplace_abn`` with the batch statistics of every process of ``group`` (a
    ``torch.distributed`` process group; None: the default one) together.

    With batch statistics (``training``, or no running statistics) and an initialized
    ``torch.distributed`` whose group has more than one process, the forward normalizes ``x`` with
    the mean and variance of the concatenation of every process's ``x`` (batches may differ in
    size; one element per channel is enough locally, two are needed in all), and the running
    statistics are updated with them (the same values on every process); the backward gives ``dx``
    of the sum of every process's loss, and the parameter gradients of this process's own loss
    (a data-parallel wrapper such as DistributedDataParallel reduces those). Each pass all-gathers
    2C + 1 float64 values per process, on ``x``'s device: every process of the group must call it,
    in the same order as its other collectives. Otherwise (global statistics, no process group, or
    a group of one) it is ``inplace_abn``.
    """
    return _apply(x, weight, bias, running_mean, running_var, training, momentum, eps, activation,
                  activation_param, abs_weight, sync=True, group=group)


class InPlaceABN(nn.Module):
    """BatchNorm over the channels (dim 1) of a rank 2-5 input, then an invertible activation, in place.

    ``InPlaceABN(C, activation="leaky_relu", activation_param=0.01)`` computes what
    ``nn.Sequential(nn.BatchNorm2d(C), nn.LeakyReLU(0.01, inplace=True))`` computes, with the
    ``state_dict`` keys of ``nn.BatchNorm2d`` (a BatchNorm checkpoint loads) and about half the
    memory saved for backward. ``activation``: "identity", "leaky_relu" or "elu" (relu cannot be
    inverted). ``momentum=None``: the cumulative average, as in torch.

    ``dtype``: of the parameters and running statistics (float32 by default). A float32 module
    takes float32 inputs and float16/bfloat16 ones (torch.autocast's arrangement: 16-bit
    activations, float32 state); ``.double()`` makes it take float64 inputs. After ``.half()`` or
    ``.bfloat16()`` it takes inputs of that dtype, computing on float32 copies of its state and
    rounding the running statistics back to 16 bits after each batch; keeping the state in float32
    (``.float()`` on the layer after ``model.half()``) keeps them more precise.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, activation="leaky_relu",
                 activation_param=0.01, track_running_stats=True, abs_weight=False, device=None, dtype=None):
        super().__init__()
        _iabn.check_activation(activation)
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.activation = activation
        self.activation_param = activation_param
        self.track_running_stats = track_running_stats
        self.abs_weight = abs_weight
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x):
        return inplace_abn(x, *self._arguments())

    def _arguments(self):
        """inplace_abn's arguments after x for this step (counting it in num_batches_tracked)."""
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # the cumulative average of the batches seen
                momentum = 1.0 / float(self.num_batches_tracked)
        return (self.weight, self.bias, self.running_mean, self.running_var,
                self.training or not self.track_running_stats, momentum, self.eps, self.activation,
                self.activation_param, self.abs_weight)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"activation={self.activation}, activation_param={self.activation_param}"
                + (", abs_weight=True" if self.abs_weight else ""))


class InPlaceABNSync(InPlaceABN):
    """``InPlaceABN`` whose batch statistics are those of every process of ``group`` together
    (synchronized batch norm, as ``nn.SyncBatchNorm``): ``inplace_abn_sync``.

    ``group``: a ``torch.distributed`` process group, None for the default one (looked up at each
    forward). In training, with an initialized ``torch.distributed`` and more than one process in
    the group, each forward and each backward all-gathers 2C + 1 float64 values per process; the
    running statistics are then the same on every process, and the parameter gradients are each
    process's own (DistributedDataParallel averages them). In eval mode (with running statistics),
    or without an initialized group of more than one process, it is ``InPlaceABN``, one-pass
    kernels included. The same arguments (and ``group``), ``state_dict`` keys and dtype rules as
    ``InPlaceABN``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, activation="leaky_relu",
                 activation_param=0.01, track_running_stats=True, abs_weight=False, device=None, dtype=None,
                 group=None):
        super().__init__(num_features, eps, momentum, affine, activation, activation_param, track_running_stats,
                         abs_weight, device, dtype)
        self.group = group

    def forward(self, x):
        return inplace_abn_sync(x, *self._arguments(), group=self.group)
