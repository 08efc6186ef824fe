"""PyTorch's BatchNorm + in-place leaky_relu on the GPU, timed the way iabn-bench-gpu times iabn.

What a framework runs without InPlace-ABN: F.batch_norm (training, affine, running statistics)
then F.leaky_relu_ (in place, slope 0.01); backward: autograd's, through both, to dx, dweight and
dbias (torch.autograd.grad, which returns them rather than adding them into .grad, so repeated
calls do the same work). Weight 1, bias 5 and the input values are iabn-bench-gpu's.

Per call, as for iabn:
  events: CALLS back-to-back calls on one stream between two CUDA events, time / CALLS, the
          median of REPEATS runs (the host's work per call included wherever it is slower than
          the device: autograd's, Python's);
  graph:  the same CALLS captured once into a torch.cuda.CUDAGraph on that (side) stream, after
          the events runs have warmed it up, replayed REPEATS times between two events, time /
          CALLS, median.

Shapes: the file --shapes names, as `iabn-bench-gpu --list-shapes` writes it ("NxCxHxW" lines),
so that both programs run one list; in iabn-bench-gpu's order: dtype, then shape, then layout
(nchw: contiguous; nhwc: torch.channels_last).

dtypes: f32 as it is. f16 and bf16 as a user gets them: activations of that dtype, weight, bias
and running statistics in f32, the forward inside torch.autocast("cuda", dtype=...). batch_norm is
on none of autocast's CUDA op lists (its float32 list has layer_norm and group_norm, not
batch_norm), so autocast leaves it to run in its input's dtype with the f32 parameters (PyTorch's
mixed-precision batch norm): that is what is timed. A "# autocast ..." line says which dtypes went
in and came out, as observed, so the record does not depend on this comment.

Prints "<NxCxHxW> <nchw|nhwc> <dtype> <fwd-train|bwd-train> <events|graph> <ms>" lines, and
"# ..." lines (what ran, what failed), for iabn-bench-gpu --torch.

  python3 torch_bench.py --shapes FILE|- [--calls 20] [--repeats 7] [--dtypes f32,f16,bf16]
                         [--budget-s SECONDS] [--dry-run]
"""
import argparse
import contextlib
import sys
import time

START = time.monotonic()  # the time budget counts from here: torch's import included
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("f32", "f16", "bf16")
WEIGHT, BIAS = 1.0, 5.0  # iabn-bench-gpu's kWeight, kBias


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch's batch_norm + leaky_relu_ for iabn-bench-gpu --torch")
    p.add_argument("--shapes", required=True, help="'NxCxHxW' lines (iabn-bench-gpu --list-shapes); - for stdin")
    p.add_argument("--calls", type=int, default=20, help="back-to-back calls per timed run (default 20)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs, of which the median (default 7)")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="of f32,f16,bf16 (default all, in that order)")
    p.add_argument("--budget-s", type=float, default=0, help="start no (dtype, shape) pair after this (0: no limit)")
    p.add_argument("--dry-run", action="store_true", help="print the cases and exit (no torch needed)")
    args = p.parse_args(argv)
    args.calls = max(1, args.calls)
    args.repeats = max(3, args.repeats)  # iabn-bench-gpu's minimum too
    args.dtypes = args.dtypes.split(",")
    for d in args.dtypes:
        if d not in DTYPES:
            p.error(f"--dtypes takes {', '.join(DTYPES)}, not '{d}'")
    return args


def read_shapes(path):
    if path == "-":
        lines = sys.stdin.read().split()
    else:
        with open(path) as f:
            lines = f.read().split()
    shapes = []
    for line in lines:
        dims = tuple(int(d) for d in line.split("x"))
        if len(dims) != 4:
            sys.exit(f"torch_bench.py: {path}: '{line}' is not NxCxHxW")
        shapes.append(dims)
    if not shapes:
        sys.exit(f"torch_bench.py: {path} has no shapes")
    return shapes


def dims_text(shape):
    return "x".join(str(d) for d in shape)


def median(values):  # bench::median's: the upper middle of an even count
    return sorted(values)[len(values) // 2]


class Timer:
    """A side stream, two events, and the two ways of timing CALLS calls on the stream."""

    def __init__(self, torch, calls, repeats):
        self.torch = torch
        self.calls, self.repeats = calls, repeats
        self.stream = torch.cuda.Stream()
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def events(self, call):
        def enqueue():
            for _ in range(self.calls):
                call()

        return self._median_per_call(enqueue)

    def graph(self, call):
        g = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(g, stream=self.stream):
            for _ in range(self.calls):
                call()
        g.replay()  # the first replay uploads the graph: untimed
        return self._median_per_call(g.replay)

    def _median_per_call(self, enqueue):
        ms = []
        for _ in range(self.repeats):
            self.start.record(self.stream)
            enqueue()
            self.end.record(self.stream)
            self.end.synchronize()
            ms.append(self.start.elapsed_time(self.end) / self.calls)
        return median(ms)


class Case:
    """One shape, dtype and layout: the tensors, and PyTorch's forward and backward on them."""

    def __init__(self, torch, shape, dtype, layout, device="cuda"):
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        n, c, h, w = shape
        self.dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
        fmt = torch.contiguous_format if layout == "nchw" else torch.channels_last
        x = 1.5 * torch.randn(n, c, h, w, device=device) + 0.3
        self.x = x.to(self.dtype).contiguous(memory_format=fmt).requires_grad_(True)
        self.dz = torch.randn(n, c, h, w, device=device).to(self.dtype).contiguous(memory_format=fmt)
        self.weight = torch.full((c,), WEIGHT, device=device, requires_grad=True)
        self.bias = torch.full((c,), BIAS, device=device, requires_grad=True)
        self.running_mean, self.running_var = torch.zeros(c, device=device), torch.ones(c, device=device)
        self.z = None

    def autocast(self):
        # cache_enabled=False: autocast's cast cache must not outlive a graph capture (PyTorch's
        # CUDA graph notes); batch_norm casts nothing anyway.
        if self.dtype == self.torch.float32:
            return contextlib.nullcontext()
        return self.torch.autocast("cuda", dtype=self.dtype, cache_enabled=False)

    def forward(self):
        y = self.F.batch_norm(self.x, self.running_mean, self.running_var, self.weight, self.bias, training=True,
                              momentum=0.1, eps=1e-5)
        return self.F.leaky_relu_(y, 0.01)

    def keep_forward(self):
        """The z whose autograd graph the backward calls run through (retained: it stays)."""
        with self.autocast():
            self.z = self.forward()
        return self.z

    def backward(self):
        return self.torch.autograd.grad(self.z, (self.x, self.weight, self.bias), self.dz, retain_graph=True)


def error_text(e):
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def note_once(line, notes_done):
    if line not in notes_done:
        notes_done.add(line)
        print(line, flush=True)


def timed_pass(timer, call, context, what, notes_done):
    """(events, graph) ms per call, each run inside context() (autocast for the forward); a graph
    that cannot be captured gets None (iabn-bench-gpu's column says -) and a '#' line per pass and
    error, not per case; the events time stands."""
    with context():
        events = timer.events(call)
    try:
        with context():
            graph = timer.graph(call)
    except Exception as e:  # noqa: BLE001 -- reported
        graph = None
        note_once(f"# no graph time for {what}: {error_text(e)}", notes_done)
    return events, graph


def run_case(torch, timer, shape, dtype, layout, notes_done):
    with torch.cuda.stream(timer.stream):  # the tensors, the calls and the autograd graph on one stream
        case = Case(torch, shape, dtype, layout)
        z = case.keep_forward()  # also the warm-up
        if dtype != "f32":
            note_once(f"# autocast(dtype={case.dtype}): batch_norm took {case.x.dtype} activations with "
                      f"{case.weight.dtype} weight, bias and running statistics, and gave {z.dtype}", notes_done)
        fwd = timed_pass(timer, case.forward, case.autocast, "PyTorch's forward", notes_done)
        case.backward()  # warm-up
        # The backward outside autocast, as PyTorch advises: its ops run in the forward's dtypes.
        bwd = timed_pass(timer, case.backward, contextlib.nullcontext, "PyTorch's backward", notes_done)
    for pass_, times in (("fwd-train", fwd), ("bwd-train", bwd)):
        for method, ms in zip(("events", "graph"), times):
            if ms is not None:
                print(f"{dims_text(shape)} {layout} {dtype} {pass_} {method} {ms:.5f}", flush=True)
    del case, z
    torch.cuda.empty_cache()  # the graphs' pools and the case's tensors, before the next shape


def main(argv=None):
    args = parse_args(argv)
    shapes = read_shapes(args.shapes)
    pairs = [(dtype, shape) for dtype in args.dtypes for shape in shapes]  # iabn-bench-gpu's order
    if args.dry_run:
        print(f"# dry run: {len(pairs) * len(LAYOUTS)} cases, fwd-train and bwd-train, events and graph, "
              f"{args.calls} calls x {args.repeats} repeats each")
        for dtype, shape in pairs:
            for layout in LAYOUTS:
                print(f"# would run {dims_text(shape)} {layout} {dtype}")
        return 0
    import torch

    if not torch.cuda.is_available():
        sys.exit("torch_bench.py: PyTorch sees no CUDA device")
    print(f"# torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}) on "
          f"{torch.cuda.get_device_name()}; {args.calls} calls x {args.repeats} repeats", flush=True)
    torch.manual_seed(0)
    timer = Timer(torch, args.calls, args.repeats)
    notes_done = set()
    for k, (dtype, shape) in enumerate(pairs):
        if args.budget_s > 0 and time.monotonic() - START > args.budget_s:
            print(f"# time budget of {args.budget_s:.0f} s spent: {len(pairs) - k} of {len(pairs)} (dtype, shape) "
                  "pairs not run", flush=True)
            break
        for layout in LAYOUTS:
            try:
                run_case(torch, timer, shape, dtype, layout, notes_done)
            except Exception as e:  # noqa: BLE001 -- one case's failure (e.g. out of memory) leaves the others
                print(f"# {dims_text(shape)} {layout} {dtype} failed: {error_text(e)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
