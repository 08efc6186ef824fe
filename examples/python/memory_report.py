"""The table the two memory examples print (train_memory.py for PyTorch, paddle_train_memory.py for
Paddle): what each network kept for backward, its step times and its losses step by step."""


def median_ms(times):
    """The median step time in ms, without the first step (warm-up) where there are others."""
    times = sorted(times[1:] or times)
    return times[len(times) // 2] * 1e3


def print_report(header, baseline_name, baseline, abn, loss_limit, peaks=None):
    """Prints the comparison; `baseline` and `abn` are (losses, step times, bytes kept); `peaks`
    the (baseline, abn) peak memory where the device reports it. Returns (largest relative loss
    difference, whether it is within loss_limit, kept ratio abn / baseline)."""
    mib = 1 / 2**20
    ratio = abn[2] / baseline[2]
    print(header + "\n")
    print(f"{'':34}{baseline_name:>24}{'InPlaceABN':>14}")
    print(f"{'kept for backward (MiB)':34}{baseline[2] * mib:24.1f}{abn[2] * mib:14.1f}   ({ratio:.2f}x)")
    if peaks is not None:
        print(f"{'peak memory (MiB)':34}{peaks[0] * mib:24.1f}{peaks[1] * mib:14.1f}   ({peaks[1] / peaks[0]:.2f}x)")
    print(f"{'time per step, median (ms)':34}{median_ms(baseline[1]):24.1f}{median_ms(abn[1]):14.1f}")
    print(f"\nstep  loss ({baseline_name})  loss (InPlaceABN)  relative difference")
    worst = 0.0
    for i, (a, b) in enumerate(zip(baseline[0], abn[0])):
        diff = abs(a - b) / abs(a)
        worst = max(worst, diff)
        print(f"{i:4}  {a:{len(baseline_name) + 7}.6f}  {b:17.6f}  {diff:19.1e}")
    ok = worst < loss_limit
    print(f"\nlosses agree step by step: {'yes' if ok else 'NO'} (largest relative difference {worst:.1e}, "
          f"limit {loss_limit:.0e})")
    return worst, ok, ratio
