"""Train a small ResNet-style network twice with PaddlePaddle on the same synthetic data: once with
BatchNorm2D + LeakyReLU, once with iabn's InPlaceABN (iabn.paddle), from the same initial weights.
Prints what autograd keeps for backward in each (counted with paddle.autograd.saved_tensors_hooks,
every memory block once), the time per step, and the two losses step by step. Exits with 1 if the
losses part ways or InPlaceABN keeps more than 0.6x of what BatchNorm2D + LeakyReLU keep.

    python examples/python/paddle_train_memory.py [--steps 8] [--batch 16] [--size 64]
"""

import argparse
import sys
import time

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from iabn.paddle import InPlaceABN
from memory_report import print_report


def norm_act(kind, channels):
    if kind == "bn":
        return [nn.BatchNorm2D(channels), nn.LeakyReLU(0.01)]
    return [InPlaceABN(channels, act="leaky_relu", act_alpha=0.01)]


class Block(nn.Layer):
    """conv-norm-act, conv-norm-act, plus the input (the residual reads the block's input, which no
    InPlaceABN writes over: each writes over its own convolution's output)."""

    def __init__(self, kind, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False),
                                  *norm_act(kind, channels),
                                  nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False),
                                  *norm_act(kind, channels))

    def forward(self, x):
        return x + self.body(x)


def network(kind, width=32, classes=10):
    paddle.seed(0)  # the same initial weights for both kinds
    layers = [nn.Conv2D(3, width, 3, padding=1, bias_attr=False), *norm_act(kind, width)]
    for stage, channels in enumerate((width, 2 * width)):
        if stage:
            layers += [nn.Conv2D(channels // 2, channels, 3, stride=2, padding=1, bias_attr=False),
                       *norm_act(kind, channels)]
        layers += [Block(kind, channels), Block(kind, channels)]
    layers += [nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(2 * width, classes)]
    return nn.Sequential(*layers)


def train(kind, data, steps):
    net = network(kind)
    opt = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=net.parameters())
    losses, times, kept = [], [], 0
    for step in range(steps):
        x, y = data[step]
        start = time.perf_counter()
        saved = {}

        def pack(t):
            saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), t.numel().item() * t.element_size())
            return t

        with paddle.autograd.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        times.append(time.perf_counter() - start)
        losses.append(float(loss))
        kept = max(kept, sum(saved.values()))
    return losses, times, kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    data = [(paddle.to_tensor(rng.normal(size=(args.batch, 3, args.size, args.size)).astype("float32")),
             paddle.to_tensor(rng.integers(0, 10, size=(args.batch, 1)))) for _ in range(args.steps)]

    bn = train("bn", data, args.steps)
    abn = train("abn", data, args.steps)
    # float32: the two round differently, and training carries the differences on.
    _, ok_losses, ratio = print_report(
        f"ResNet-style net (10 norm+activation layers), batch {args.batch} x 3 x {args.size} x {args.size}, "
        f"float32, {args.steps} SGD steps on cpu, paddle {paddle.__version__}", "BatchNorm2D + LeakyReLU", bn, abn, 1e-3)
    ok_memory = ratio <= 0.6
    print(f"InPlaceABN keeps at most 0.6x: {'yes' if ok_memory else 'NO'} ({ratio:.2f}x)")
    return 0 if ok_losses and ok_memory else 1


if __name__ == "__main__":
    sys.exit(main())
