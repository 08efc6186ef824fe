#!/usr/bin/env python3
"""Compares repeated iabn-bench runs of two builds, run interleaved (A, B, A, B, ...), from the
JSON files each run wrote (--json). Per row (shape, layout, dtype, pass): the median over the runs
of each build's median time, the spread of each build's runs (max - min), B / A, and B against its
floor; a row where B is slower than A by more than the larger spread is flagged. Then, for B, the
16-bit rows against the f32 row of the same shape and pass, and against their own floor.

  bench/compare_runs.py --a 'Halide 14:/tmp/h14-*.json' --b 'Halide 21:/tmp/h21-*.json' [--passes fwd-train,bwd-train]

Prints Markdown tables (BENCHMARKS.md takes them as they are)."""
import argparse
import glob
import json
import statistics
import sys


def load(pattern):
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"compare_runs: no file matches {pattern}")
    runs = []
    for f in files:
        with open(f) as fh:
            runs.append({(r["shape_name"], r["shape"], r["layout"], r["dtype"], r["pass"]): r for r in json.load(fh)["rows"]})
    return files, runs


def summary(runs, key):
    times = [run[key]["iabn_ms"] for run in runs if key in run and run[key]["iabn_ms"]]
    floors = [run[key]["floor_ms"] for run in runs if key in run and run[key]["floor_ms"]]
    if not times:
        return None
    return statistics.median(times), max(times) - min(times), statistics.median(floors) if floors else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="LABEL:GLOB of the first build's JSON files")
    ap.add_argument("--b", required=True, help="LABEL:GLOB of the second build's JSON files")
    ap.add_argument("--passes", default="fwd-train,fwd-global,bwd-train")
    args = ap.parse_args()
    (a_label, a_glob), (b_label, b_glob) = (x.split(":", 1) for x in (args.a, args.b))
    a_files, a_runs = load(a_glob)
    b_files, b_runs = load(b_glob)
    passes = args.passes.split(",")
    print(f"{a_label}: {len(a_files)} runs; {b_label}: {len(b_files)} runs (medians of each run's medians; "
          f"spread = slowest - fastest run)\n")
    print(f"| shape | layout | dtype | pass | {a_label} ms | spread | {b_label} ms | spread | {b_label} / {a_label} "
          f"| {b_label} / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    flagged = []
    keys = [k for k in b_runs[0] if k[4] in passes]
    for key in keys:
        a, b = summary(a_runs, key), summary(b_runs, key)
        if not a or not b:
            continue
        ratio = b[0] / a[0]
        slower = b[0] - a[0] > max(a[1], b[1])
        if slower:
            flagged.append(key)
        floor = f"{b[0] / b[2]:.2f}" if b[2] else "-"
        mark = " **slower**" if slower else ""
        print(f"| {key[0]} {key[1]} | {key[2]} | {key[3]} | {key[4]} | {a[0]:.3f} | {a[1]:.3f} | {b[0]:.3f} | {b[1]:.3f} "
              f"| {ratio:.2f}{mark} | {floor} |")
    print(f"\nRows where {b_label} is slower than {a_label} by more than the larger spread: "
          + (", ".join(" ".join(k[1:]) for k in flagged) if flagged else "none"))

    print(f"\n{b_label}, 16-bit rows against the f32 row of the same shape and pass, and against their own floor:\n")
    print("| shape | layout | pass | dtype | ms | f32 ms | / f32 | / own floor |")
    print("|---|---|---|---|---|---|---|---|")
    for key in keys:
        if key[3] not in ("f16", "bf16"):
            continue
        h = summary(b_runs, key)
        f = summary(b_runs, key[:3] + ("f32",) + key[4:])
        if not h or not f:
            continue
        own = f"{h[0] / h[2]:.2f}" if h[2] else "-"
        print(f"| {key[0]} {key[1]} | {key[2]} | {key[4]} | {key[3]} | {h[0]:.3f} | {f[0]:.3f} | {h[0] / f[0]:.2f} | {own} |")


if __name__ == "__main__":
    main()
