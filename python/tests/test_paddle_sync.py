"""iabn.paddle.InPlaceABNSync across 3 processes (paddle.distributed over gloo, on this machine's
CPU), with unequal batches: each process compares its share of the result with Paddle's float64
batch_norm + activation over the concatenated batch, computed in that process. dx is the gradient
of the sum of every process's loss; the parameter gradients are each process's own loss's.

Fresh random inputs each run (the seed is in every failure message).
"""

import os
import pathlib
import random
import warnings

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

SEED = int(os.environ.get("IABN_TEST_SEED", random.SystemRandom().randrange(2**31)))
BATCHES = (3, 1, 2)  # per rank
C, H, W = 4, 3, 5


def _worker(out_dir, seed, data_format, act, alpha):
    warnings.filterwarnings("ignore")
    import paddle.distributed as dist
    import paddle.nn.functional as F

    from iabn.paddle import InPlaceABNSync

    paddle.set_default_dtype("float64")
    dist.init_parallel_env()
    rank = dist.get_rank()
    rng = np.random.default_rng(seed)  # the same draws in every process
    n = sum(BATCHES)
    x_full = rng.normal(0.3, 1.5, size=(n, C, H, W))
    g_full = rng.normal(size=(n, C, H, W))
    w0, b0 = rng.uniform(0.5, 1.5, C), rng.normal(0, 0.5, C)
    rm0, rv0 = rng.normal(0, 0.2, C), rng.uniform(0.5, 2.0, C)
    lo = sum(BATCHES[:rank])
    mine = slice(lo, lo + BATCHES[rank])
    last = data_format == "NHWC"

    def fmt(a):  # logical NCHW to the data format
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if last else a

    layer = InPlaceABNSync(C, act=act, act_alpha=alpha, momentum=0.8, data_format=data_format)
    layer.set_state_dict({"weight": paddle.to_tensor(w0), "bias": paddle.to_tensor(b0),
                          "_mean": paddle.to_tensor(rm0), "_variance": paddle.to_tensor(rv0)})
    leaf = paddle.to_tensor(fmt(x_full[mine]), stop_gradient=False)
    z = layer(leaf * 1.0)
    z_values = z.numpy().copy()
    (z * paddle.to_tensor(fmt(g_full[mine]))).sum().backward()

    # The reference: the whole batch in this process, Paddle's float64 batch norm.
    def reference(loss_rows):
        x = paddle.to_tensor(fmt(x_full), stop_gradient=False)
        w = paddle.to_tensor(w0, stop_gradient=False)
        b = paddle.to_tensor(b0, stop_gradient=False)
        rm, rv = paddle.to_tensor(rm0), paddle.to_tensor(rv0)
        y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.8, data_format=data_format)
        y = F.leaky_relu(y, alpha) if act == "leaky_relu" else F.elu(y, alpha)
        (y[loss_rows] * paddle.to_tensor(fmt(g_full))[loss_rows]).sum().backward()
        return y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy(), rm.numpy(), rv.numpy()

    y, dx_all, _, _, rm, rv = reference(slice(0, n))  # dx: every process's loss
    _, _, dw_own, db_own, _, _ = reference(mine)     # parameter gradients: this process's loss
    failures = []
    for what, actual, expected in (("z", z_values, y[mine]), ("dx", leaf.grad.numpy(), dx_all[mine]),
                                   ("dweight", layer.weight.grad.numpy(), dw_own),
                                   ("dbias", layer.bias.grad.numpy(), db_own),
                                   ("running mean", layer._mean.numpy(), rm),
                                   ("running variance", layer._variance.numpy(), rv)):
        err = np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-300)
        # (Paddle keeps momentum as a float32: its float64 running statistics agree to ~1e-8.)
        tol = 1e-7 if what.startswith("running") else 1e-10
        if not err <= tol:
            failures.append(f"rank {rank}: {what} relative error {err:.3g} > {tol:g}")
    (pathlib.Path(out_dir) / f"rank{rank}.txt").write_text("\n".join(failures) or "ok")


@pytest.mark.parametrize("data_format,act,alpha", [("NCHW", "leaky_relu", 0.1), ("NHWC", "elu", 1.0)])
def test_three_processes_match_the_whole_batch(tmp_path, data_format, act, alpha):
    import paddle.distributed as dist

    # The processes are on this machine: gloo on the loopback interface. Without it gloo finds
    # its interface from the hostname, which a machine need not resolve (a fresh Debian root has
    # no /etc/hosts: "network vm: cannot be obtained").
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.spawn(_worker, args=(str(tmp_path), SEED, data_format, act, alpha), nprocs=len(BATCHES), backend="gloo")
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in range(len(BATCHES))]
    assert results == ["ok"] * len(BATCHES), f"{results} (IABN_TEST_SEED={SEED})"


def test_without_a_parallel_environment_it_is_inplace_abn():
    from iabn.paddle import InPlaceABN, InPlaceABNSync

    x = paddle.to_tensor(np.random.default_rng(SEED).normal(size=(4, 3, 5)).astype("float32"))
    expected = InPlaceABN(3)(x.clone())
    np.testing.assert_array_equal(InPlaceABNSync(3)(x.clone()).numpy(), expected.numpy())
