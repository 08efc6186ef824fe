"""iabn.torch against PyTorch's own batch_norm + activation, in float64.

Every comparison is with torch.nn.functional (an independent implementation of the same math):
outputs, running statistics (torch's momentum convention, the cumulative average, unbiased
variance), gradients (autograd through the reference, and torch.autograd.gradcheck), over ranks 2
to 5, contiguous and channels_last inputs, every activation, train and eval, affine and not. Then
what the package promises beyond the math: the memory saved for backward, BatchNorm checkpoints,
training that follows BatchNorm + activation step by step, a gradient shared by two consumers,
and errors in Python's terms.
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


def saved_bytes(run):
    """Bytes autograd keeps for backward while `run` builds the graph (each storage counted once)."""
    kept = {}

    def pack(t):
        kept[t.data_ptr()] = max(kept.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return sum(kept.values()), out


def test_saves_about_half_of_batchnorm_plus_activation():
    C = 32
    x0 = torch.randn(8, C, 16, 16)
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
    with pytest.raises(ValueError, match="activation_param"):
        InPlaceABN(3, activation_param=0.0)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="contiguous"):
        InPlaceABN(3)(torch.randn(4, 5, 3).transpose(1, 2))
    with pytest.raises(ValueError, match="float32 or float64"):
        InPlaceABN(3)(torch.ones(2, 3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="f16"):
        InPlaceABN(3)(torch.randn(2, 3, 4).half())
    with pytest.raises(ValueError, match="dtype"):
        InPlaceABN(3)(torch.randn(2, 3, 4, dtype=torch.float64))  # float32 state, float64 input
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
