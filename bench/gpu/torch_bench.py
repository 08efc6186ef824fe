"""PyTorch's BatchNorm + in-place leaky_relu on the GPU, the shapes of iabn-bench-gpu.

What a framework runs without InPlace-ABN: F.batch_norm (training, affine) then F.leaky_relu_
(in place, slope 0.01), and autograd's backward of both. Prints "<dims> <layout> <pass> <ms>"
lines (medians of CUDA-event times) for iabn-bench-gpu --torch.
"""
import sys

import torch
import torch.nn.functional as F

SHAPES = [(32, 64, 112, 112), (32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7)]
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def timed(fn):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def main():
    if not torch.cuda.is_available():
        sys.exit("torch_bench.py: PyTorch sees no CUDA device")
    torch.manual_seed(0)
    for n, c, h, w in SHAPES:
        for layout in ("nchw", "nhwc"):
            fmt = torch.contiguous_format if layout == "nchw" else torch.channels_last
            x0 = (1.5 * torch.randn(n, c, h, w, device="cuda") + 0.3).contiguous(memory_format=fmt)
            dz = torch.randn(n, c, h, w, device="cuda").contiguous(memory_format=fmt)
            weight = torch.ones(c, device="cuda", requires_grad=True)
            bias = torch.zeros(c, device="cuda", requires_grad=True)
            rm, rv = torch.zeros(c, device="cuda"), torch.ones(c, device="cuda")
            fwd, bwd = [], []
            for r in range(REPEATS + 1):
                x = x0.clone().requires_grad_(True)
                out = {}

                def forward():
                    y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)
                    out["z"] = F.leaky_relu_(y, 0.01)

                t_fwd = timed(forward)
                t_bwd = timed(lambda: out["z"].backward(dz))
                if r > 0:
                    fwd.append(t_fwd)
                    bwd.append(t_bwd)
            dims = "x".join(str(d) for d in ((n, c, h, w) if layout == "nchw" else (n, h, w, c)))
            print(f"{dims} {layout} fwd-train {median(fwd):.4f}", flush=True)
            print(f"{dims} {layout} bwd-train {median(bwd):.4f}", flush=True)


if __name__ == "__main__":
    main()
