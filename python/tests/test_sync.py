"""iabn.torch's synchronized layer (InPlaceABNSync, inplace_abn_sync) across processes.

Three processes on this machine (this file run as a script: `worker`, below), in a gloo process
group over loopback (a FileStore rendezvous in a temporary folder), hold local batches of 1, 4 and
7 samples of one batch drawn afresh each run (the seed comes from os.urandom and is in every
failure message; IABN_SYNC_SEED=<n> repeats a run). Every process's results are compared, in the
pytest process, with torch's float64 batch_norm + activation over the whole batch, through
autograd (an independent implementation, not iabn): z, the running statistics (the same bits on
every process), the saved inverse standard deviation, dx (the gradient of the sum of every
process's loss) and the parameter gradients (of the process's own share of the loss, the
data-parallel convention). float64 within 1e-12 of the largest magnitude; float32, bfloat16 and
float16 within test_torch.py's bounds, derived from their unit roundoff. Also: a process whose
input is [1, C] (one element per channel), two DistributedDataParallel steps against BatchNorm2d,
eval mode (no exchange), a process that fails before the exchange (the others get an error from
the process group's timeout; the test never hangs: every process is killed at a deadline), the
layer without a group of several processes (it is InPlaceABN), and the cases again on CUDA tensors
where torch has a GPU.
"""

import datetime
import os
import subprocess
import sys
import time
import traceback
from collections import namedtuple
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import iabn
from iabn.torch import InPlaceABN, InPlaceABNSync, inplace_abn, inplace_abn_sync
from test_torch import F32, activate, assert_within, channel_sum, half_reference, laid_out

BATCHES = (1, 4, 7)  # each process's local batch, in rank order
WORLD = len(BATCHES)
C = 5
MOMENTUM, EPS = 0.1, 1e-5
F64 = 1e-12  # float64: relative to the largest magnitude of the quantity
FAILURE_TIMEOUT_S = 10  # the process group's timeout where a process fails before the exchange
CASES_TIMEOUT_S = 30  # the process group's timeout elsewhere (a loaded machine is slow, not wrong)
LAUNCH_DEADLINE_S = 120  # a run of the three workers, after which they are killed

# api "module": InPlaceABNSync with weight, bias and running statistics; "functional":
# inplace_abn_sync without any (batch statistics, no running ones).
Case = namedtuple("Case", "dtype spatial layout activation param training api", defaults=(True, "module"))
ACTS = (("leaky_relu", 0.01), ("elu", 1.0))
CASES = ([Case(dt, (3, 4), layout, *act) for dt in (torch.float64, torch.float32)
          for layout in ("contiguous", "channels_last") for act in ACTS]
         + [Case(torch.float64, (), "contiguous", "leaky_relu", 0.1),  # rank 0's input is [1, C]
            Case(torch.float32, (), "contiguous", "elu", 0.5),
            Case(torch.float64, (2, 3, 2), "channels_last", "identity", 1.0),
            Case(torch.float64, (6,), "contiguous", "elu", 0.7, api="functional"),
            Case(torch.float64, (3, 4), "channels_last", "leaky_relu", 0.2, training=False),
            Case(torch.bfloat16, (3, 4), "contiguous", "leaky_relu", 0.01),
            Case(torch.float16, (3, 4), "channels_last", "elu", 1.0)])


def case_name(case):
    return (f"{str(case.dtype)[6:]}-r{2 + len(case.spatial)}-{case.layout}-{case.activation}{case.param}-"
            f"{'train' if case.training else 'eval'}-{case.api}")


def share(rank):
    """The rows of the whole batch that a process holds."""
    start = sum(BATCHES[:rank])
    return slice(start, start + BATCHES[rank])


def draw(case, index, seed):
    """The whole batch of a case, and the layer's state (float32 state for 16-bit inputs)."""
    gen = torch.Generator().manual_seed(seed + index)
    f64 = {"dtype": torch.float64, "generator": gen}
    shape = (sum(BATCHES), C, *case.spatial)
    state = torch.float64 if case.dtype == torch.float64 else torch.float32
    return {
        "x": (torch.randn(*shape, **f64) * 1.7 + 0.4).to(case.dtype),
        "dz": torch.randn(*shape, **f64).to(case.dtype),
        "weight": ((torch.rand(C, **f64) + 0.5) * torch.sign(torch.randn(C, **f64))).to(state),
        "bias": torch.randn(C, **f64).to(state),
        "running_mean": (torch.randn(C, **f64) * 0.2).to(state),
        "running_var": (torch.rand(C, **f64) + 0.5).to(state),
    }


@contextmanager
def no_exchange():
    """dist.all_gather refused: for the passes that must not exchange anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("an all_gather where the layer should compute locally")

    real, dist.all_gather = dist.all_gather, refuse
    try:
        yield
    finally:
        dist.all_gather = real


# ---------------------------------------------------------------------------------------------
# The workers (run as `python test_sync.py <scenario> <rank> <folder> <seed> <cpu|cuda>`).

def run_case(case, index, seed, rank, device):
    full = draw(case, index, seed)
    part = {k: (v[share(rank)] if k in ("x", "dz") else v).to(device) for k, v in full.items()}
    x = part["x"].clone().requires_grad_()
    inp = laid_out(x * 1.0, case.layout)  # a non-leaf: the layer writes over it
    saved = []

    def pack(t):
        saved.append(t)
        return t

    # Global statistics (eval): nothing to exchange, forward or backward.
    with nullcontext() if case.training else no_exchange():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if case.api == "module":
                layer = InPlaceABNSync(C, eps=EPS, momentum=MOMENTUM, activation=case.activation,
                                       activation_param=case.param, device=device, dtype=part["weight"].dtype)
                with torch.no_grad():
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        getattr(layer, name).copy_(part[name])
                layer.train(case.training)
                z = layer(inp)
            else:
                z = inplace_abn_sync(inp, None, None, None, None, True, MOMENTUM, EPS, case.activation, case.param)
        out = {"in_place": z.data_ptr() == inp.data_ptr()}
        z.backward(laid_out(part["dz"], case.layout))
    out.update(z=z, dx=x.grad)
    if case.training:
        out["saved_invstd"] = saved[-1]  # save_for_backward(z, weight, bias, invstd): the last one
    if case.api == "module":
        out.update(weight_grad=layer.weight.grad, bias_grad=layer.bias.grad, running_mean=layer.running_mean,
                   running_var=layer.running_var, num_batches_tracked=int(layer.num_batches_tracked))
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in out.items()}


def ddp_net(norm, seed):
    """conv, norm + leaky_relu, conv, norm + elu; the same parameters for any `norm`."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1, bias=False), *norm(6, "leaky_relu", 0.01),
                              torch.nn.Conv2d(6, 4, 3, padding=1), *norm(4, "elu", 1.0)).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
        for m in net.modules():
            if hasattr(m, "running_var"):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen, dtype=torch.float64) + 0.5)
    return net


def ddp_batch(seed, step):
    gen = torch.Generator().manual_seed(seed + 1000 + step)
    n = sum(BATCHES)
    return (torch.randn(n, 3, 5, 5, generator=gen, dtype=torch.float64),
            torch.randn(n, 4, 5, 5, generator=gen, dtype=torch.float64))


DDP_STEPS = 2


def run_ddp(seed, rank, device):
    from torch.nn.parallel import DistributedDataParallel

    net = ddp_net(lambda c, act, param: (InPlaceABNSync(c, activation=act, activation_param=param),), seed)
    net = net.to(device)
    model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    steps = []
    for step in range(DDP_STEPS):
        x, dz = ddp_batch(seed, step)
        model.zero_grad()
        out = model(x[share(rank)].to(device))
        (out * dz[share(rank)].to(device)).sum().backward()
        # (copies: the next step zeroes the gradients and updates the buffers in place)
        steps.append({"out": out.detach().cpu().clone(),
                      "grads": [p.grad.detach().cpu().clone() for p in net.parameters()],
                      "buffers": [b.detach().cpu().clone() for b in net.buffers()]})
    return steps


def run_cases(rank, folder, seed, device):
    results, failed = {}, None
    work = [(case_name(c), lambda i=i, c=c: run_case(c, i, seed, rank, device)) for i, c in enumerate(CASES)]
    work.append(("ddp", lambda: run_ddp(seed, rank, device)))
    for name, run in work:
        if failed:  # the others are waiting in a collective this process will not make
            results[name] = f"not run: {failed} raised first"
            continue
        try:
            results[name] = run()
        except Exception:
            results[name] = traceback.format_exc()
            failed = name
    return results


def run_failure(rank, folder, seed, device):
    """Rank 1 raises before the exchange (an input neither contiguous nor channels_last), then
    stays in the group (its peers see no closed connection, only a collective that does not
    complete) until the parent writes `release`."""
    layer = InPlaceABNSync(C).to(device)
    x = torch.randn(BATCHES[rank], C, 4, 4, device=device)
    if rank == 1:
        x = x.transpose(2, 3)
    start = time.monotonic()
    try:
        layer(x)
        outcome = {"raised": None}
    except Exception as e:
        outcome = {"raised": type(e).__name__, "runtime_error": isinstance(e, RuntimeError), "message": str(e)}
    outcome["seconds"] = time.monotonic() - start
    if rank == 1:
        deadline = time.monotonic() + 4 * FAILURE_TIMEOUT_S
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return outcome


SCENARIOS = {"cases": (run_cases, CASES_TIMEOUT_S), "failure": (run_failure, FAILURE_TIMEOUT_S)}


def all_ready(folder, rank):
    """Every worker has imported torch: the rendezvous's timeout then counts from a common start."""
    (folder / f"ready{rank}").touch()
    deadline = time.monotonic() + LAUNCH_DEADLINE_S
    while not all((folder / f"ready{r}").exists() for r in range(WORLD)):
        if time.monotonic() > deadline:
            raise TimeoutError("the other workers did not start")
        time.sleep(0.05)


def worker(scenario, rank, folder, seed, device_kind):
    rank, folder, seed = int(rank), Path(folder), int(seed)
    torch.set_num_threads(1)  # three processes on a machine of a few cores
    iabn.set_num_threads(1)
    if device_kind == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        # NCCL takes one GPU a process; fewer GPUs than processes: gloo, which takes CUDA tensors too.
        backend = "nccl" if torch.cuda.device_count() >= WORLD else "gloo"
    else:
        device, backend = torch.device("cpu"), "gloo"
    run, timeout = SCENARIOS[scenario]
    all_ready(folder, rank)
    dist.init_process_group(backend, init_method=f"file://{folder / 'store'}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=timeout))
    torch.save({"backend": backend, "results": run(rank, folder, seed, device)}, folder / f"rank{rank}.pt")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no teardown of a process group that a failed collective may have left waiting


# ---------------------------------------------------------------------------------------------
# The parent: launch, wait (never past a deadline), compare.

Run = namedtuple("Run", "seed results backend error")


def fresh_seed():
    return int(os.environ.get("IABN_SYNC_SEED") or int.from_bytes(os.urandom(6), "little"))


def launch(scenario, folder, seed, device_kind="cpu", first=range(WORLD)):
    """Runs the three workers; returns a Run (error: why results are missing, with the logs).
    `first`: the ranks waited for before `release` is written (then all of them are)."""
    env = dict(os.environ)
    # The workers import the iabn this process imported (a venv's, a --target folder's).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(os.path.abspath(iabn.__file__))),
                                                   env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    logs = [open(folder / f"log{rank}.txt", "w") for rank in range(WORLD)]
    procs = [subprocess.Popen([sys.executable, __file__, scenario, str(rank), str(folder), str(seed), device_kind],
                              stdout=logs[rank], stderr=subprocess.STDOUT, env=env) for rank in range(WORLD)]
    deadline = time.monotonic() + LAUNCH_DEADLINE_S

    def wait(ranks):
        for rank in ranks:
            try:
                procs[rank].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    problems = []
    try:
        done = wait(first)
        (folder / "release").touch()
        if not (done and wait(range(WORLD))):
            problems.append(f"still running after {LAUNCH_DEADLINE_S} s: killed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    results, backend = [], None
    for rank, p in enumerate(procs):
        out = folder / f"rank{rank}.pt"
        if p.returncode != 0 or not out.exists():
            problems.append(f"rank {rank}: exit status {p.returncode}, results {'' if out.exists() else 'missing'}")
            continue
        saved = torch.load(out)
        results.append(saved["results"])
        backend = saved["backend"]
    error = None
    if problems:
        tails = "\n".join(f"--- rank {r} log (tail) ---\n{(folder / f'log{r}.txt').read_text()[-3000:]}"
                          for r in range(WORLD))
        error = f"seed {seed}: " + "; ".join(problems) + "\n" + tails
    return Run(seed, results, backend, error)


def expected(case, full):
    """torch's float64 results over the whole batch, and the bounds per rank of each quantity."""
    module = case.api == "module"
    x, dz = full["x"].double(), full["dz"].double()
    xr = x.clone().requires_grad_()
    wr, br = ((full[k].double().requires_grad_() for k in ("weight", "bias")) if module else (None, None))
    rm, rv = (full["running_mean"].double(), full["running_var"].double()) if module else (None, None)
    z = activate(F.batch_norm(xr, rm, rv, wr, br, case.training, MOMENTUM, EPS), case.activation, case.param)
    dx, = torch.autograd.grad(z, xr, dz, retain_graph=True)
    want = {"z": z.detach(), "dx": dx}
    dims = [d for d in range(x.dim()) if d != 1]
    if case.training:
        want["saved_invstd"] = 1 / torch.sqrt(x.var(dim=dims, unbiased=False) + EPS)
    if module:
        want.update(running_mean=rm, running_var=rv)
    low = case.dtype != torch.float64
    if low:
        _, bounds = half_reference(full["x"], full["weight"], full["bias"], full["running_mean"].clone(),
                                   full["running_var"].clone(), case.training, MOMENTUM, EPS, case.activation,
                                   case.param, full["dz"])
    per_rank = []
    for rank in range(WORLD):
        s = share(rank)
        mine = {k: want[k][s] for k in ("z", "dx")}
        if module:  # the gradient of this process's share of the loss
            mine["weight_grad"], mine["bias_grad"] = torch.autograd.grad((z[s] * dz[s]).sum(), (wr, br),
                                                                         retain_graph=True)
        bound = {}
        for k, v in mine.items():
            if not low:
                bound[k] = F64 * (v.abs() + want[k].abs().max() if k in want else v.abs() + v.abs().max())
            elif k in ("z", "dx"):
                bound[k] = bounds[k][s]
            else:
                bound[k] = channel_sum(bounds[f"{k}_terms"][s])
        for k in ("saved_invstd", "running_mean", "running_var"):
            if k in want:
                mine[k] = want[k]
                bound[k] = (F32 if low else F64) * (want[k].abs() + (1 if low else want[k].abs().max()))
        per_rank.append((mine, bound))
    return per_rank


def check_case(run, index):
    assert run.error is None, run.error
    case = CASES[index]
    name = case_name(case)
    per_rank = expected(case, draw(case, index, run.seed))
    for rank, (want, bound) in enumerate(per_rank):
        where = f"seed {run.seed}, {run.backend}, rank {rank} (local batch {BATCHES[rank]}), {name}"
        got = run.results[rank][name]
        assert not isinstance(got, str), f"{where}: raised\n{got}"
        assert got["in_place"], f"{where}: the output is not written over the input"
        assert got["z"].dtype == got["dx"].dtype == case.dtype, where
        for k in want:
            assert_within(got[k], want[k], bound[k], f"{where}: {k}")
        if case.api == "module":
            assert got["num_batches_tracked"] == (1 if case.training else 0), where
    # Every process merges the same rows in the same order: the same bits.
    for k in ("running_mean", "running_var", "saved_invstd"):
        if k in run.results[0][name]:
            assert all(torch.equal(r[name][k], run.results[0][name][k]) for r in run.results), \
                f"seed {run.seed}, {name}: {k} differs between processes"


def check_ddp(run):
    """DistributedDataParallel averages the processes' gradients: 1/P of the gradient of the sum
    of their losses, which a single process computes with BatchNorm2d over the whole batch."""
    assert run.error is None, run.error
    acts = {"leaky_relu": torch.nn.LeakyReLU, "elu": torch.nn.ELU}
    ref = ddp_net(lambda c, act, param: (torch.nn.BatchNorm2d(c), acts[act](param)), run.seed)
    for step in range(DDP_STEPS):
        x, dz = ddp_batch(run.seed, step)
        ref.zero_grad()
        out = ref(x)
        (out * dz).sum().backward()
        out = out.detach()
        want_grads = [p.grad / WORLD for p in ref.parameters()]
        want_buffers = list(ref.buffers())
        for rank in range(WORLD):
            got = run.results[rank]["ddp"]
            where = f"seed {run.seed}, {run.backend}, DDP step {step}, rank {rank}"
            assert not isinstance(got, str), f"{where}: raised\n{got}"
            got = got[step]
            # Each bound: 1e-10 of the largest magnitude among the outputs, the gradients (the
            # convolution's bias before a normalization has a gradient of 0 plus rounding) or
            # each buffer.
            grad_scale = max(w.abs().max() for w in want_grads)
            pairs = [("out", got["out"], out[share(rank)], out.abs().max())]
            pairs += [(f"grad {i}", g, w, grad_scale) for i, (g, w) in enumerate(zip(got["grads"], want_grads))]
            pairs += [(f"buffer {i}", g, w.double(), w.abs().max()) for i, (g, w) in
                      enumerate(zip(got["buffers"], want_buffers))]
            for what, g, w, scale in pairs:
                assert_within(g.double(), w, 1e-10 * (w.abs() + scale), f"{where}: {what}")


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    return launch("cases", tmp_path_factory.mktemp("sync"), fresh_seed())


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_name(c) for c in CASES])
def test_each_process_gets_the_whole_batchs_results(cpu_run, index):
    check_case(cpu_run, index)


def test_distributed_data_parallel_follows_batchnorm_over_the_whole_batch(cpu_run):
    check_ddp(cpu_run)


def test_a_process_that_fails_before_the_exchange_makes_the_others_fail_not_hang(tmp_path):
    start = time.monotonic()
    run = launch("failure", tmp_path, fresh_seed(), first=(0, 2))
    assert run.error is None, run.error
    failed = run.results[1]
    assert failed["raised"] == "ValueError" and "contiguous" in failed["message"], failed
    for rank in (0, 2):
        got = run.results[rank]
        assert got["raised"] and got["runtime_error"], f"rank {rank}: {got}"
        assert got["seconds"] < FAILURE_TIMEOUT_S + 20, f"rank {rank}: the error came after {got['seconds']:.1f} s"
    assert time.monotonic() - start < LAUNCH_DEADLINE_S


def same_as_inplace_abn(dtype, layout, training, gen):
    """InPlaceABNSync and InPlaceABN on the same input and state: the same bits."""
    outs = []
    x = laid_out(torch.randn(4, C, 3, 4, dtype=torch.float64, generator=gen).to(dtype), layout)
    dz = laid_out(torch.randn(4, C, 3, 4, dtype=torch.float64, generator=gen).to(dtype), layout)
    for cls in (InPlaceABN, InPlaceABNSync):
        layer = cls(C, activation="elu", activation_param=0.5, dtype=dtype).train(training)
        xi = x.clone().requires_grad_()
        z = layer(laid_out(xi * 1.0, layout))
        z.backward(dz)
        outs.append([z, xi.grad, layer.weight.grad, layer.bias.grad, layer.running_mean, layer.running_var])
    for got, want in zip(*outs):
        assert torch.equal(got, want), f"{dtype}, {layout}, {'train' if training else 'eval'}"


def test_without_a_group_of_several_processes_it_is_inplace_abn(tmp_path):
    assert not dist.is_initialized()
    gen = torch.Generator().manual_seed(fresh_seed())
    grid = [(dt, layout, t) for dt in (torch.float64, torch.float32) for layout in ("contiguous", "channels_last")
            for t in (True, False)]
    for args in grid:
        same_as_inplace_abn(*args, gen)
    x = torch.randn(4, C, 6, generator=gen)
    torch.testing.assert_close(inplace_abn_sync(x.clone(), None, None, None, None),
                               inplace_abn(x.clone(), None, None, None, None), rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least 2 elements per channel"):
        InPlaceABNSync(C)(torch.randn(1, C))  # one element per channel, and no one to share with
    # A group of one process: nothing to exchange.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=FAILURE_TIMEOUT_S))
    try:
        with no_exchange():
            for args in grid:
                same_as_inplace_abn(*args, gen)
    finally:
        dist.destroy_process_group()


NO_CUDA = ("torch.cuda.is_available() is False" if not torch.cuda.is_available()
           else None if iabn.has_cuda_kernels() else "this build of iabn has no CUDA kernels")


@pytest.mark.skipif(NO_CUDA is not None, reason=f"needs CUDA tensors: {NO_CUDA}")
def test_cuda_tensors(tmp_path):
    """The same cases on CUDA tensors: NCCL with a GPU a process, else gloo (which takes CUDA
    tensors) with the processes sharing the GPUs."""
    run = launch("cases", tmp_path, fresh_seed(), "cuda")
    for index in range(len(CASES)):
        check_case(run, index)
    check_ddp(run)


if __name__ == "__main__":
    worker(*sys.argv[1:])
