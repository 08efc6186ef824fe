"""iabn.torch against PyTorch's own batch_norm + activation, in float64.

Every comparison is with torch.nn.functional (an independent implementation of the same math):
outputs, running statistics (torch's momentum convention, the cumulative average, unbiased
variance), gradients (autograd through the reference, and torch.autograd.gradcheck), over ranks 2
to 5, contiguous and channels_last inputs, every activation, train and eval, affine and not; the
same grid for float16 and bfloat16 inputs with float32 state, within bounds derived from their
unit roundoff. Then what the package promises beyond the math: the memory saved for backward,
BatchNorm checkpoints, training that follows BatchNorm + activation step by step, a gradient
shared by two consumers, 16-bit modules and autocast, and errors in Python's terms.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

import iabn
from iabn.torch import InPlaceABN, inplace_abn

torch.manual_seed(0)

SHAPES = {2: (16, 5), 3: (4, 5, 7), 4: (3, 5, 4, 6), 5: (2, 5, 3, 4, 3)}
ACTIVATIONS = [("identity", 1.0), ("leaky_relu", 0.01), ("leaky_relu", 0.3), ("elu", 1.0), ("elu", 0.5)]


def activate(y, activation, param):
    if activation == "leaky_relu":
        return F.leaky_relu(y, param)
    if activation == "elu":
        return F.elu(y, param)
    return y


def layouts(rank):
    out = ["contiguous"]
    if rank in (4, 5):
        out.append("channels_last")
    return out


def laid_out(t, layout):
    if layout == "contiguous":
        return t.contiguous()
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.contiguous(memory_format=fmt)


def inputs(rank, layout, dtype=torch.float64):
    x = torch.randn(*SHAPES[rank], dtype=dtype) * 1.7 + 0.4
    return laid_out(x, layout)


def reference(x, weight, bias, running_mean, running_var, training, momentum, eps, activation, param):
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return activate(y, activation, param)


CASES = [(r, l, a, t, aff) for r in SHAPES for l in layouts(r) for a in ACTIVATIONS
         for t in (True, False) for aff in (True, False)]


@pytest.mark.parametrize("rank,layout,act,training,affine", CASES,
                         ids=[f"r{r}-{l}-{a[0]}{a[1]}-{'train' if t else 'eval'}-{'affine' if aff else 'plain'}"
                              for r, l, a, t, aff in CASES])
def test_forward_backward_and_running_stats_match_torch(rank, layout, act, training, affine):
    activation, param = act
    C = SHAPES[rank][1]
    x = inputs(rank, layout)
    weight = (torch.rand(C, dtype=torch.float64) + 0.5) * torch.sign(torch.randn(C, dtype=torch.float64)) if affine else None
    bias = torch.randn(C, dtype=torch.float64) if affine else None
    rm, rv = torch.randn(C, dtype=torch.float64) * 0.2, torch.rand(C, dtype=torch.float64) + 0.5
    momentum, eps = 0.1, 1e-5

    # Reference, through autograd.
    xr = x.clone().requires_grad_()
    wr = weight.clone().requires_grad_() if affine else None
    br = bias.clone().requires_grad_() if affine else None
    rm_ref, rv_ref = rm.clone(), rv.clone()
    zr = reference(xr, wr, br, rm_ref, rv_ref, training, momentum, eps, activation, param)
    dz = laid_out(torch.randn_like(zr), layout)
    zr.backward(dz)

    # iabn, in place over a non-leaf copy of x.
    xi = x.clone().requires_grad_()
    wi = weight.clone().requires_grad_() if affine else None
    bi = bias.clone().requires_grad_() if affine else None
    rm_i, rv_i = rm.clone(), rv.clone()
    inp = xi * 1.0  # a non-leaf: in-place changes of a leaf that requires grad are refused by autograd
    inp = laid_out(inp, layout)
    zi = inplace_abn(inp, wi, bi, rm_i, rv_i, training, momentum, eps, activation, param)
    assert zi.data_ptr() == inp.data_ptr(), "the output is not written over the input"
    zi.backward(dz)

    tol = dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(zi.detach(), zr.detach(), **tol)
    torch.testing.assert_close(rm_i, rm_ref, **tol)
    torch.testing.assert_close(rv_i, rv_ref, **tol)
    torch.testing.assert_close(xi.grad, xr.grad, **tol)
    if affine:
        torch.testing.assert_close(wi.grad, wr.grad, **tol)
        torch.testing.assert_close(bi.grad, br.grad, **tol)


GRADCHECK = [(2, "contiguous", ("leaky_relu", 0.1)), (3, "contiguous", ("elu", 0.7)),
             (4, "channels_last", ("elu", 1.0)), (5, "contiguous", ("identity", 1.0)),
             (4, "contiguous", ("leaky_relu", 0.2))]


@pytest.mark.parametrize("rank,layout,act", GRADCHECK, ids=[f"r{r}-{l}-{a[0]}" for r, l, a in GRADCHECK])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck(rank, layout, act, training):
    activation, param = act
    C = SHAPES[rank][1]
    x = inputs(rank, layout).requires_grad_()
    weight = (torch.rand(C, dtype=torch.float64) + 0.5).requires_grad_()
    bias = torch.randn(C, dtype=torch.float64).requires_grad_()
    rm, rv = torch.zeros(C, dtype=torch.float64), torch.rand(C, dtype=torch.float64) + 0.5

    def f(x, w, b):
        inp = laid_out(x * 1.0, layout)
        # Running statistics only in eval (batch statistics would update them between calls).
        return inplace_abn(inp, w, b, None if training else rm, None if training else rv, training, 0.1, 1e-5,
                           activation, param)

    assert torch.autograd.gradcheck(f, (x, weight, bias), eps=1e-6, atol=1e-6)


def test_module_follows_batchnorm_including_momentum_none_and_num_batches_tracked():
    C = 6
    for momentum in (0.1, 0.5, None):
        bn = torch.nn.BatchNorm2d(C, momentum=momentum).double()
        abn = InPlaceABN(C, momentum=momentum, activation="identity").double()
        for _ in range(4):
            x = torch.randn(5, C, 3, 4, dtype=torch.float64) * 2 + 1
            ref = bn(x)
            out = abn(x.clone())
            torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(abn.running_mean, bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(abn.running_var, bn.running_var, rtol=1e-12, atol=1e-12)
        assert int(abn.num_batches_tracked) == int(bn.num_batches_tracked) == 4
        abn.eval()
        bn.eval()
        x = torch.randn(5, C, 3, 4, dtype=torch.float64)
        torch.testing.assert_close(abn(x.clone()), bn(x), rtol=1e-10, atol=1e-10)


def test_float32_matches_within_float32_rounding():
    C = 8
    x = torch.randn(4, C, 9, 7) * 3 + 2
    bn = torch.nn.BatchNorm2d(C)
    abn = InPlaceABN(C, activation="leaky_relu", activation_param=0.01)
    ref = F.leaky_relu(bn(x), 0.01)
    out = abn(x.clone())
    torch.testing.assert_close(out, ref, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(abn.running_var, bn.running_var, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# float16 and bfloat16 inputs: stored in 16 bits, computed in float32, with float32 per-channel
# state (torch.autocast's arrangement). The reference is torch's float64 batch_norm + activation on
# the same 16-bit values cast up. Every tolerance is derived from the unit roundoff u of the dtype
# (round to nearest: a stored value is within u * |value| of the float32 result, or within half the
# subnormal spacing below the normal range) and the float32 budget of iabn's own tests.

HALF_U = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}
HALF_SUBNORMAL = {torch.float16: 2.0 ** -25, torch.bfloat16: 2.0 ** -134}  # half the subnormal spacing
# float32: 80 eps, iabn's tests' budget (tests/support/error_measures.h) for a few roundings per element
# and the per-channel sums (accumulated in double, rounded to float32).
F32 = 80 * 2.0 ** -23
# float32 inputs (test_sync.py) take half_reference's bounds with float32's own roundoff.
ROUNDOFF = {**HALF_U, torch.float32: 2.0 ** -24}
HALF_SPACING = {**HALF_SUBNORMAL, torch.float32: 2.0 ** -150}


def per_channel(t, like):
    """A [C] tensor, broadcastable over `like` (channels at dim 1)."""
    return t.view(1, -1, *([1] * (like.dim() - 2)))


def channel_sum(t):
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


def inverse_activation(z, activation, param, step):
    """y from z as iabn recovers it (docs/semantics.md, "ELU saturation"): ELU's log1p argument clamped at -1 + step."""
    if activation == "leaky_relu":
        neg = z / param
    elif activation == "elu":
        neg = torch.log1p(torch.clamp(z / param, min=-1 + step))
    else:
        return z
    return torch.where(z >= 0, z, neg)


def derivative_factor(z, activation, param):
    """act'(y) written in terms of z, as iabn computes it (0 where ELU saturated)."""
    if activation == "identity":
        return torch.ones_like(z)
    neg = torch.full_like(z, param) if activation == "leaky_relu" else torch.clamp(z + param, min=0)
    return torch.where(z >= 0, torch.ones_like(z), neg)


def half_reference(x16, weight, bias, rm, rv, training, momentum, eps, activation, param, dz16):
    """torch's float64 results from the 16-bit x and dz (cast up) and the float32 state, and the
    elementwise bounds of what iabn's may differ by (float32 x and dz: the same, u = 2^-24):

    * z: rounded once to 16 bits from float32: u |z| + half the subnormal spacing, plus the f32
      budget (of max |z|).
    * The backward recovers y from the stored z, which may be anywhere in z +- dz_bound: its error
      is propagated exactly through the inverse activation (the ends of the interval, clamped as
      iabn clamps ELU) and to first order through xhat = (y - b) / w, dy = dz * act'(y), the sums
      db = sum(dy), dw = sum(dy * xhat) and dx = w invstd (dy - db/M - xhat dw/M) (batch
      statistics) or w invstd dy (running ones); dx is rounded once more to 16 bits. Each result
      gets the f32 budget of the magnitudes it is summed from.
    """
    dtype = x16.dtype
    u, sub = ROUNDOFF[dtype], HALF_SPACING[dtype]
    C = x16.shape[1]
    x = x16.double()
    w = weight.double() if weight is not None else None
    b = bias.double() if bias is not None else None
    xr = x.clone().requires_grad_()
    wr = w.clone().requires_grad_() if w is not None else None
    br = b.clone().requires_grad_() if b is not None else None
    rm_ref, rv_ref = rm.double(), rv.double()
    y = F.batch_norm(xr, rm_ref, rv_ref, wr, br, training, momentum, eps)
    z = activate(y, activation, param)
    dz = dz16.double()
    z.backward(dz)
    out = {"z": z.detach(), "running_mean": rm_ref, "running_var": rv_ref, "dx": xr.grad,
           "weight_grad": wr.grad if wr is not None else None, "bias_grad": br.grad if br is not None else None}

    with torch.no_grad():
        y, z = y.detach(), z.detach()
        M = x.numel() // C
        if training:
            mean = channel_sum(x) / M
            var = channel_sum((x - per_channel(mean, x)) ** 2) / M
        else:
            mean, var = rm.double(), rv.double()
        invstd = per_channel(1 / torch.sqrt(var + eps), x)
        xhat = (x - per_channel(mean, x)) * invstd
        g = per_channel(w.abs(), x) if w is not None else torch.ones_like(invstd)
        gi = g * invstd
        dy = dz * derivative_factor(z, activation, param)
        dw_exact = channel_sum(dy * xhat)

        z_bound = u * z.abs() + sub + F32 * z.abs().max()
        ends = (z - z_bound, z + z_bound)
        y_bound = torch.maximum(*(torch.abs(inverse_activation(e, activation, param, u) - y) for e in ends))
        fac = derivative_factor(z, activation, param)
        fac_bound = torch.maximum(*(torch.abs(derivative_factor(e, activation, param) - fac) for e in ends))
        dy_bound = dz.abs() * fac_bound
        xhat_bound = y_bound / g
        # (elementwise terms, which test_sync.py sums over each process's share)
        db_terms = dy_bound + F32 * dy.abs()
        dw_terms = dy_bound * xhat.abs() + dy.abs() * xhat_bound + F32 * (dy * xhat).abs()
        db_bound, dw_bound = channel_sum(db_terms), channel_sum(dw_terms)
        if training:
            dx_bound = gi * (dy_bound + per_channel(db_bound, x) / M + xhat_bound * per_channel(dw_exact.abs(), x) / M
                             + xhat.abs() * per_channel(dw_bound, x) / M)
            dx_scale = gi * (dy.abs() + per_channel(channel_sum(dy.abs()), x) / M
                             + xhat.abs() * per_channel(channel_sum((dy * xhat).abs()), x) / M)
        else:
            dx_bound = gi * dy_bound
            dx_scale = gi * dy.abs()
        dx_bound = (1 + u) * (dx_bound + F32 * dx_scale) + u * out["dx"].abs() + sub
    bounds = {"z": z_bound, "dx": dx_bound, "weight_grad": dw_bound, "bias_grad": db_bound,
              "weight_grad_terms": dw_terms, "bias_grad_terms": db_terms}
    return out, bounds


def assert_within(got, want, bound, what):
    err = (got.double() - want).abs()
    worst = (err / bound).max().item()
    assert torch.isfinite(got).all(), f"{what}: not finite"
    assert worst <= 1, f"{what}: an error {worst:.3g} times its bound (largest error {err.max().item():.3g})"


HALF_CASES = [(dt, r, l, a, t, aff) for dt in HALF_U for r in SHAPES for l in layouts(r) for a in ACTIVATIONS
              for t in (True, False) for aff in (True, False)]


@pytest.mark.parametrize("dtype,rank,layout,act,training,affine", HALF_CASES,
                         ids=[f"{str(dt)[6:]}-r{r}-{l}-{a[0]}{a[1]}-{'train' if t else 'eval'}-"
                              f"{'affine' if aff else 'plain'}" for dt, r, l, a, t, aff in HALF_CASES])
def test_16bit_forward_backward_and_running_stats_match_float64_torch(dtype, rank, layout, act, training, affine):
    activation, param = act
    C = SHAPES[rank][1]
    x16 = inputs(rank, layout).to(dtype)
    # float32 state, as an autocast model keeps it.
    weight = ((torch.rand(C) + 0.5) * torch.sign(torch.randn(C))) if affine else None
    bias = torch.randn(C) if affine else None
    rm, rv = torch.randn(C) * 0.2, torch.rand(C) + 0.5
    dz16 = laid_out(torch.randn(*SHAPES[rank]), layout).to(dtype)
    momentum, eps = 0.1, 1e-5
    ref, bound = half_reference(x16, weight, bias, rm.clone(), rv.clone(), training, momentum, eps, activation,
                                param, dz16)

    xi = x16.clone().requires_grad_()
    wi = weight.clone().requires_grad_() if affine else None
    bi = bias.clone().requires_grad_() if affine else None
    rm_i, rv_i = rm.clone(), rv.clone()
    inp = laid_out(xi * 1.0, layout)
    zi = inplace_abn(inp, wi, bi, rm_i, rv_i, training, momentum, eps, activation, param)
    assert zi.data_ptr() == inp.data_ptr() and zi.dtype == dtype
    zi.backward(dz16)

    assert_within(zi.detach(), ref["z"], bound["z"], "z")
    assert rm_i.dtype == rv_i.dtype == torch.float32
    # Running statistics: float32 results of double sums of the 16-bit x (unchanged in eval).
    torch.testing.assert_close(rm_i.double(), ref["running_mean"], rtol=F32, atol=F32)
    torch.testing.assert_close(rv_i.double(), ref["running_var"], rtol=F32, atol=F32)
    assert xi.grad.dtype == dtype
    assert_within(xi.grad, ref["dx"], bound["dx"], "dx")
    if affine:
        assert wi.grad.dtype == bi.grad.dtype == torch.float32
        assert_within(wi.grad, ref["weight_grad"], bound["weight_grad"], "weight_grad")
        assert_within(bi.grad, ref["bias_grad"], bound["bias_grad"], "bias_grad")


@pytest.mark.parametrize("dtype", list(HALF_U), ids=["float16", "bfloat16"])
def test_16bit_input_with_float32_module_saves_float32_statistics(dtype):
    C = 6
    abn = InPlaceABN(C, activation="leaky_relu", activation_param=0.1)
    x = (torch.randn(4, C, 5, 5) * 2 + 1).to(dtype)
    saved = []

    def pack(t):
        saved.append((tuple(t.shape), t.dtype))
        return t

    inp = x.clone().requires_grad_() * 1.0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z = abn(inp)
    # z, weight, bias and the batch's invstd: the 16-bit output and float32 per-channel tensors.
    assert sorted(saved, key=str) == sorted([((4, C, 5, 5), dtype)] + [((C,), torch.float32)] * 3, key=str)
    z.float().sum().backward()
    assert abn.weight.grad.dtype == abn.bias.grad.dtype == torch.float32
    assert abn.running_mean.dtype == abn.running_var.dtype == torch.float32
    assert int(abn.num_batches_tracked) == 1


@pytest.mark.parametrize("dtype", list(HALF_U), ids=["float16", "bfloat16"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_16bit_state_is_the_float32_computation_rounded_back(dtype, training):
    """A module turned 16-bit (model.half()): computed on float32 copies of its state, so every
    result is the float32-state module's on the same values, with the running statistics and the
    parameter gradients rounded to the state's dtype (exactly: one rounding of the same float32s)."""
    C = 5
    torch.manual_seed(7)
    abn16 = InPlaceABN(C, activation="elu", activation_param=1.0).to(dtype)
    with torch.no_grad():
        abn16.weight.uniform_(0.5, 1.5)
        abn16.bias.normal_()
        abn16.running_mean.normal_()
        abn16.running_var.uniform_(0.5, 2)
    abn32 = InPlaceABN(C, activation="elu", activation_param=1.0)
    abn16.train(training)
    abn32.train(training)
    for step in range(3):
        abn32.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in abn16.state_dict().items()})
        abn32.zero_grad()
        abn16.zero_grad()
        x = (torch.randn(4, C, 3, 5) * 1.5 + 0.3).to(dtype)
        dz = torch.randn(4, C, 3, 5).to(dtype)
        x16, x32 = x.clone().requires_grad_(), x.clone().requires_grad_()
        z16, z32 = abn16(x16 * 1.0), abn32(x32 * 1.0)
        z16.backward(dz)
        z32.backward(dz)
        assert torch.equal(z16, z32), f"step {step}: z"
        assert torch.equal(x16.grad, x32.grad), f"step {step}: dx"
        for name in ("weight", "bias"):
            g16, g32 = getattr(abn16, name).grad, getattr(abn32, name).grad
            assert g16.dtype == dtype and torch.equal(g16, g32.to(dtype)), f"step {step}: {name} grad"
        for name in ("running_mean", "running_var"):
            r16, r32 = getattr(abn16, name), getattr(abn32, name)
            assert r16.dtype == dtype and torch.equal(r16, r32.to(dtype)), f"step {step}: {name}"
    assert int(abn16.num_batches_tracked) == (3 if training else 0)


def test_16bit_dtype_rule_errors():
    x16, xbf = torch.randn(2, 3, 4).half(), torch.randn(2, 3, 4).bfloat16()
    with pytest.raises(ValueError, match="float16 inputs take float32 per-channel tensors"):
        InPlaceABN(3).double()(x16)
    with pytest.raises(ValueError, match="bfloat16 inputs take float32 per-channel tensors"):
        InPlaceABN(3).half()(xbf)
    with pytest.raises(ValueError, match="torch.float32 inputs take per-channel tensors .* of the input's dtype"):
        InPlaceABN(3).half()(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="running_var has dtype torch.float64"):
        inplace_abn(x16, None, None, torch.zeros(3), torch.ones(3, dtype=torch.float64))
    # float32 and 16-bit per-channel tensors may be mixed (each is taken as float32).
    abn = InPlaceABN(3)
    abn.weight.data = abn.weight.data.half()
    abn(x16.clone())
    assert abn.running_var.dtype == torch.float32 and int(abn.num_batches_tracked) == 1


def test_bfloat16_autocast_network_follows_batchnorm_plus_activation():
    """Under torch.autocast on the CPU (bfloat16), a convolution hands a float32 InPlaceABN a bfloat16
    tensor, as it hands it to nn.BatchNorm2d, whose CPU kernel takes the same mixed dtypes in torch
    1.13. Both round their outputs to bfloat16 from float32 arithmetic."""
    u = HALF_U[torch.bfloat16]
    nets = [small_net(lambda c: (torch.nn.BatchNorm2d(c), torch.nn.LeakyReLU(0.01))).float(),
            small_net(lambda c: (InPlaceABN(c, activation="leaky_relu", activation_param=0.01),)).float()]
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    outs, grads, feats = [], [], []
    for net in nets:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = net[1](net[0](x))  # conv, then the normalization: its output is bfloat16
            feats.append(h.dtype)
            out = net(x)
        outs.append(out.float())
        out.float().square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert feats == [torch.bfloat16, torch.bfloat16]
    norms = [[m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm2d, InPlaceABN))] for net in nets]
    for bn, abn in zip(*norms):
        assert abn.weight.dtype == abn.running_var.dtype == abn.weight.grad.dtype == torch.float32
        # Two forwards (the first one only for its dtype), the same batch: the same statistics.
        torch.testing.assert_close(abn.running_mean, bn.running_mean, rtol=8 * u, atol=8 * u)
        torch.testing.assert_close(abn.running_var, bn.running_var, rtol=8 * u, atol=8 * u)
    # The two networks round differently in bfloat16: a few u, norm-wise.
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    assert rel(outs[1], outs[0]) <= 8 * u
    assert rel(grads[1], grads[0]) <= 16 * u


def saved_bytes(run):
    """Bytes autograd keeps for backward while `run` builds the graph (each storage counted once)."""
    kept = {}

    def pack(t):
        kept[t.data_ptr()] = max(kept.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return sum(kept.values()), out


# bfloat16: torch 1.13's CPU BatchNorm takes it with float32 state (not float16: no CPU kernel).
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_saves_about_half_of_batchnorm_plus_activation(dtype):
    C = 32
    x0 = torch.randn(8, C, 16, 16).to(dtype)
    bn = torch.nn.BatchNorm2d(C)
    abn = InPlaceABN(C)
    # After a convolution, as in a network (its input is what it saves itself: not counted here).
    x_bn = x0.clone().requires_grad_() * 1.0
    bn_bytes, _ = saved_bytes(lambda: F.leaky_relu(bn(x_bn), 0.01))
    x_abn = x0.clone().requires_grad_() * 1.0
    abn_bytes, _ = saved_bytes(lambda: abn(x_abn))
    tensor = x0.numel() * x0.element_size()
    assert bn_bytes >= 2 * tensor, f"BatchNorm + LeakyReLU keeps {bn_bytes} B for a {tensor} B tensor"
    assert abn_bytes <= 0.55 * bn_bytes, f"InPlaceABN keeps {abn_bytes} B, BatchNorm + LeakyReLU {bn_bytes} B"


def test_batchnorm_checkpoint_loads():
    bn = torch.nn.BatchNorm2d(7)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.num_batches_tracked.fill_(12)
    abn = InPlaceABN(7)
    abn.load_state_dict(bn.state_dict())
    assert set(abn.state_dict()) == set(bn.state_dict())
    abn.eval()
    bn.eval()
    x = torch.randn(3, 7, 5, 5)
    torch.testing.assert_close(abn(x.clone()), F.leaky_relu(bn(x), 0.01), rtol=1e-5, atol=1e-5)


def small_net(norm):
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), *norm(8),
        torch.nn.Conv2d(8, 8, 3, padding=1, bias=False), *norm(8),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).double()


def test_training_follows_batchnorm_plus_activation_step_by_step():
    bn_net = small_net(lambda c: (torch.nn.BatchNorm2d(c), torch.nn.LeakyReLU(0.01)))
    abn_net = small_net(lambda c: (InPlaceABN(c, activation="leaky_relu", activation_param=0.01),))
    bn_params = [p for p in bn_net.parameters()]
    abn_params = [p for p in abn_net.parameters()]
    assert len(bn_params) == len(abn_params)
    with torch.no_grad():
        for a, b in zip(abn_params, bn_params):
            a.copy_(b)
    opt_bn = torch.optim.SGD(bn_net.parameters(), lr=0.1, momentum=0.9)
    opt_abn = torch.optim.SGD(abn_net.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(5)
    for step in range(6):
        x = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=gen)
        target = torch.randint(0, 4, (6,), generator=gen)
        losses = []
        for net, opt in ((bn_net, opt_bn), (abn_net, opt_abn)):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-9, abs=1e-12), f"step {step}: {losses}"


def test_output_that_feeds_two_consumers():
    C = 4
    x = torch.randn(3, C, 5, 5, dtype=torch.float64)
    w = torch.rand(C, dtype=torch.float64) + 0.5
    b = torch.randn(C, dtype=torch.float64)
    results = []
    for use_iabn in (False, True):
        xi = x.clone().requires_grad_()
        wi, bi = w.clone().requires_grad_(), b.clone().requires_grad_()
        h = xi * 1.0
        if use_iabn:
            y = inplace_abn(h, wi, bi, None, None, True, 0.1, 1e-5, "elu", 1.0)
        else:
            y = F.elu(F.batch_norm(h, None, None, wi, bi, True, 0.1, 1e-5), 1.0)
        # Two consumers, one of them a sum that hands the same (expanded) gradient back.
        loss = (y * torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y)).sum() + y.sum() + (y ** 2).mean()
        loss.backward()
        results.append((xi.grad, wi.grad, bi.grad))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non_reentrant"])
def test_checkpointed_segment_that_starts_with_a_convolution(reentrant):
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(2)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1).double()
    abn = InPlaceABN(4, activation="elu", activation_param=1.0).double()
    segment = torch.nn.Sequential(conv, abn)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    state = {k: v.clone() for k, v in abn.state_dict().items()}
    segment(x * 1.0).sum().backward()
    want = x.grad.clone()
    x.grad = None
    abn.load_state_dict(state)
    checkpoint(segment, x * 1.0, use_reentrant=reentrant).sum().backward()
    torch.testing.assert_close(x.grad, want, rtol=1e-10, atol=1e-10)


def test_input_needed_elsewhere_is_caught_by_autograd():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    h = torch.sigmoid(x)  # saves its output, which InPlaceABN then overwrites
    y = inplace_abn(h, None, None, None, None, True, 0.1, 1e-5, "identity", 1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_errors_in_pythons_terms():
    with pytest.raises(ValueError, match="not invertible"):
        InPlaceABN(3, activation="relu")
    # The message formats the value it got (a module with a broken copy of libstdc++ printed
    # nothing, or crashed: python/CMakeLists.txt).
    with pytest.raises(ValueError, match="activation_param: expected a finite value > 0 .*, got 0$"):
        InPlaceABN(3, activation_param=0.0)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="contiguous"):
        InPlaceABN(3)(torch.randn(4, 5, 3).transpose(1, 2))
    with pytest.raises(ValueError, match="float32, float64, float16 or bfloat16"):
        InPlaceABN(3)(torch.ones(2, 3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="weight has dtype torch.float32, the input torch.float64"):
        InPlaceABN(3)(torch.randn(2, 3, 4, dtype=torch.float64))  # float32 state, float64 input
    # (16-bit inputs: test_16bit_dtype_rule_errors)
    with pytest.raises(ValueError, match="at least 2 elements per channel"):
        InPlaceABN(3)(torch.randn(1, 3))
    with pytest.raises(RuntimeError, match="leaf"):
        InPlaceABN(3)(torch.randn(2, 3, 4, requires_grad=True))


def test_functional_signature_and_kernels():
    assert iabn.kernel_target()
    x = torch.randn(4, 3, 5)
    ref = F.leaky_relu(F.batch_norm(x, None, None, training=True), 0.01)
    z = inplace_abn(x, None, None, None, None)
    assert z.data_ptr() == x.data_ptr()
    torch.testing.assert_close(x, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(not (torch.cuda.is_available() and iabn.has_cuda_kernels()),
                    reason="needs a CUDA device and iabn's CUDA kernels")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cuda_matches_cpu(layout):
    C = 16
    x = laid_out(torch.randn(8, C, 12, 10, dtype=torch.float64), layout)
    cpu = InPlaceABN(C, activation="elu", activation_param=0.5).double()
    gpu = InPlaceABN(C, activation="elu", activation_param=0.5).double().cuda()
    xc = x.clone().requires_grad_()
    xg = x.cuda().clone().requires_grad_()
    yc, yg = cpu(xc * 1.0), gpu(laid_out(xg * 1.0, layout))
    dz = torch.randn_like(yc)
    yc.backward(dz)
    yg.backward(dz.cuda())
    torch.testing.assert_close(yg.cpu(), yc, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gpu.running_var.cpu(), cpu.running_var, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not (torch.cuda.is_available() and iabn.has_cuda_kernels()
                         and hasattr(torch.cuda, "CUDAGraph")),
                    reason="needs a CUDA device, iabn's CUDA kernels and torch.cuda.CUDAGraph")
def test_cuda_graph_capture_and_replay():
    """A training step (forward and backward) captured in a CUDA graph and replayed on new data
    gives what the same step gives eagerly: iabn's scratch comes from torch's allocator and
    nothing waits for the stream inside the calls."""
    C = 8
    torch.manual_seed(0)
    eager = InPlaceABN(C).cuda()
    graphed = InPlaceABN(C).cuda()
    graphed.load_state_dict(eager.state_dict())
    static_x = torch.randn(4, C, 6, 5, device="cuda", requires_grad=True)

    def step(layer, x):
        y = layer(x * 1.0)
        y.backward(torch.ones_like(y))
        return y

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as torch's graph capture asks
        for _ in range(2):
            step(graphed, static_x)
            static_x.grad = None
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = step(graphed, static_x)
    eager.load_state_dict(graphed.state_dict())
    for _ in range(2):
        new = torch.randn_like(static_x)
        static_x.data.copy_(new)
        static_x.grad = None if static_x.grad is None else static_x.grad.zero_()
        graph.replay()
        x = new.clone().requires_grad_()
        y = step(eager, x)
        torch.testing.assert_close(static_y, y, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(static_x.grad, x.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(graphed.running_mean, eager.running_mean, rtol=1e-6, atol=1e-6)
