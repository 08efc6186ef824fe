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
from memory_report import print_report


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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    precision = args.dtype if dtype == torch.float32 else args.dtype + " (autocast)"
    # float32: the two round differently. 16 bits: each layer's output is rounded to 8 (bfloat16)
    # or 11 (float16) significant bits, differently in the two networks, and training carries it
    # on: a few unit roundoffs u (2^-8, 2^-11).
    limit = 1e-3 if dtype == torch.float32 else 5 * torch.finfo(dtype).eps / 2
    _, ok, _ = print_report(f"ResNet-style net (10 norm+activation layers), batch {args.batch} x 3 x {args.size} x "
                            f"{args.size}, {precision}, {args.steps} SGD steps on {name}, torch {torch.__version__}",
                            "BatchNorm2d + LeakyReLU", bn[:3], abn[:3], limit,
                            peaks=(bn[3], abn[3]) if bn[3] is not None else None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
