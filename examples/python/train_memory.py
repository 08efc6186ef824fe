"""Train a small ResNet-style network twice on the same synthetic data: once with BatchNorm2d +
LeakyReLU, once with iabn's InPlaceABN, from the same initial weights. Prints what autograd keeps
for backward in each (counted with torch.autograd.graph.saved_tensors_hooks, every storage once),
the peak memory where torch can tell (a GPU), the time per step, and the two losses step by step.

    python examples/python/train_memory.py [--steps 8] [--batch 16] [--size 64] [--device cpu|cuda]
                                           [--dtype float32|bfloat16|float16]

--dtype bfloat16 / float16 trains under torch.autocast (the model, the norm layers' weights and
running statistics stay float32; convolutions run in 16 bits and hand 16-bit tensors to BatchNorm2d
and InPlaceABN alike). torch 1.13's CPU autocast knows bfloat16 only: float16 needs --device cuda.
"""

import argparse
import time
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

from iabn.torch import InPlaceABN


def norm_act(kind, channels):
    if kind == "bn":
        return [nn.BatchNorm2d(channels), nn.LeakyReLU(0.01, inplace=True)]
    return [InPlaceABN(channels, activation="leaky_relu", activation_param=0.01)]


class Block(nn.Module):
    """conv-norm-act, conv-norm-act, plus the input (the residual reads the block's input, which no
    InPlaceABN writes over: each writes over its own convolution's output)."""

    def __init__(self, kind, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), *norm_act(kind, channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), *norm_act(kind, channels))

    def forward(self, x):
        return x + self.body(x)


def network(kind, width=32, classes=10):
    torch.manual_seed(0)  # the same initial weights for both kinds
    layers = [nn.Conv2d(3, width, 3, padding=1, bias=False), *norm_act(kind, width)]
    for stage, channels in enumerate((width, 2 * width)):
        if stage:
            layers += [nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False), *norm_act(kind, channels)]
        layers += [Block(kind, channels), Block(kind, channels)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes)]
    return nn.Sequential(*layers)


def train(kind, data, device, steps, dtype):
    net = network(kind).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses, times, kept = [], [], 0
    for step in range(steps):
        x, y = data[step]
        x, y = x.to(device), y.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        saved = {}

        def pack(t):
            saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), t.numel() * t.element_size())
            return t

        precision = nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), precision:
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
        kept = max(kept, sum(saved.values()))
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    return losses, times, kept, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="activations' dtype (16 bits: under torch.autocast, the model in float32)")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if dtype == torch.float16 and device.type == "cpu":
        parser.error("--dtype float16 needs --device cuda (torch's CPU autocast takes bfloat16 only)")
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(args.batch, 3, args.size, args.size, generator=gen),
             torch.randint(0, 10, (args.batch,), generator=gen)) for _ in range(args.steps)]

    bn = train("bn", data, device, args.steps, dtype)
    abn = train("abn", data, device, args.steps, dtype)
    mib = 1 / 2**20
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"ResNet-style net (10 norm+activation layers), batch {args.batch} x 3 x {args.size} x {args.size}, "
          f"{args.dtype if dtype == torch.float32 else args.dtype + ' (autocast)'}, {args.steps} SGD steps on {name}, "
          f"torch {torch.__version__}\n")
    print(f"{'':34}{'BatchNorm2d + LeakyReLU':>24}{'InPlaceABN':>14}")
    print(f"{'kept for backward (MiB)':34}{bn[2] * mib:24.1f}{abn[2] * mib:14.1f}   ({abn[2] / bn[2]:.2f}x)")
    if bn[3] is not None:
        print(f"{'peak memory (MiB)':34}{bn[3] * mib:24.1f}{abn[3] * mib:14.1f}   ({abn[3] / bn[3]:.2f}x)")
    med = lambda v: sorted(v)[len(v) // 2] * 1e3
    print(f"{'time per step, median (ms)':34}{med(bn[1][1:]):24.1f}{med(abn[1][1:]):14.1f}")
    print("\nstep  loss (BatchNorm2d + LeakyReLU)  loss (InPlaceABN)  relative difference")
    worst = 0.0
    for i, (a, b) in enumerate(zip(bn[0], abn[0])):
        diff = abs(a - b) / abs(a)
        worst = max(worst, diff)
        print(f"{i:4}  {a:30.6f}  {b:17.6f}  {diff:19.1e}")
    # float32: the two round differently. 16 bits: each layer's output is rounded to 8 (bfloat16)
    # or 11 (float16) significant bits, differently in the two networks, and training carries it
    # on: a few unit roundoffs u (2^-8, 2^-11).
    limit = 1e-3 if dtype == torch.float32 else 5 * torch.finfo(dtype).eps / 2
    ok = worst < limit
    print(f"\nlosses agree step by step: {'yes' if ok else 'NO'} (largest relative difference {worst:.1e}, "
          f"limit {limit:.0e}; {args.dtype} roundings differ between the two)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
