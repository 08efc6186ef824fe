"""PyTorch on the CPU, timed for iabn-bench: batch normalization + leaky_relu the way a PyTorch
user writes it (F.batch_norm, then F.leaky_relu_ on its output; autograd's backward), on tensors of
the bench's shapes, layouts and dtypes.

iabn-bench starts this script once (with Debian's /usr/bin/python3, which has torch) and talks to
it one line at a time (the worker first says "ready TORCH_VERSION"), so that PyTorch's samples interleave with iabn's, the floor's and oneDNN's
in the same run (bench/README.md):

    setup ID DTYPE LAYOUT N C H W   ->  "ok"  or  "na REASON"
    sample ID                       ->  "FORWARD_SECONDS BACKWARD_SECONDS"
    drop ID                         ->  "ok"

Each timed call is preceded, untimed, by a rewrite of a buffer twice the last-level cache (the
bench's own flush size, given on the command line), as iabn-bench does before each of its runs.
"""
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}


class Case:
    def __init__(self, dtype, layout, dims):
        dt = DTYPES[dtype]
        n, c = dims[0], dims[1]
        gen = torch.Generator().manual_seed(12345)
        x = (torch.randn(*dims, generator=gen, dtype=torch.float64) + 0.5).to(dt)
        dz = torch.randn(*dims, generator=gen, dtype=torch.float64).to(dt)
        if layout == "nhwc":
            x = x.contiguous(memory_format=torch.channels_last)
            dz = dz.contiguous(memory_format=torch.channels_last)
        self.x = x.requires_grad_()
        self.dz = dz
        self.weight = torch.ones(c, dtype=dt, requires_grad=True)
        self.bias = torch.zeros(c, dtype=dt, requires_grad=True)
        self.running_mean = torch.zeros(c, dtype=dt)
        self.running_var = torch.ones(c, dtype=dt)
        self.y = None
        self.step()  # fails here, before any timing, where PyTorch has no kernel for the dtype
        self.y = None

    def forward(self):
        y = F.batch_norm(self.x, self.running_mean, self.running_var, self.weight, self.bias,
                         training=True, momentum=0.1, eps=1e-5)
        self.y = F.leaky_relu_(y, 0.01)

    def backward(self):
        self.y.backward(self.dz)

    def reset(self):
        for t in (self.x, self.weight, self.bias):
            t.grad = None
        self.y = None

    def step(self):
        self.reset()
        self.forward()
        self.backward()
        self.reset()


def main():
    threads, flush_bytes = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    junk = torch.ones(flush_bytes // 4, dtype=torch.float32)
    cases = {}
    print("ready " + torch.__version__, flush=True)

    def timed(run):
        junk.add_(1.0)
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "setup":
            case_id, dtype, layout = words[1], words[2], words[3]
            try:
                cases[case_id] = Case(dtype, layout, [int(d) for d in words[4:]])
                reply = "ok"
            except (RuntimeError, MemoryError) as e:
                reply = "na " + str(e).splitlines()[0]
        elif words[0] == "sample":
            case = cases[words[1]]
            case.reset()
            forward = timed(case.forward)
            backward = timed(case.backward)
            case.reset()
            reply = "%.9f %.9f" % (forward, backward)
        elif words[0] == "drop":
            cases.pop(words[1], None)
            reply = "ok"
        else:
            reply = "error unknown request " + words[0]
        print(reply, flush=True)


if __name__ == "__main__":
    main()
