// What the CPU and GPU schedules share.
#pragma once

#include "Halide.h"
#include "view_layout.h"

#include <vector>

namespace iabn_sched {

// A per-channel reduction as the algorithm builds it (generators/statistics.h, channel_sums()):
// what a schedule of one needs to know. `sums(c)` is the result, a Tuple in the accumulation type.
//  * direct: every term added in the accumulation type, over `all` = the (s, n) elements of a
//    channel. Without chunks, `sums` is `direct` itself.
//  * chunked: `chunk(c, q)` adds the terms of chunk q of channel c (`in_chunk`) in the compute
//    type; `total(c)` adds the chunks (`chunks`) in the accumulation type. Where `chunked` is not
//    always true (nchw: rows short enough), sums(c) = select(chunked, total(c), direct(c)) and
//    the schedule specializes on `chunked`.
struct ChannelSums {
    Halide::Func sums, direct, chunk, total;
    Halide::RDom all, in_chunk, chunks;
    Halide::Expr chunked;  // undefined without chunks
    bool has_chunks() const { return chunk.defined(); }
    bool has_direct() const { return direct.defined(); }
};

// The Funcs of a GPU training pass's block reduction (generators/block_partials.h defines them,
// schedules/gpu.h places them): `thread_sums(t, c, sb, nb)` is thread t's sum over its elements
// of block (sb, nb) of channel c; `tree` halves the block's threads' sums level by level
// (tree[i](t, c, sb, nb)); `total(c, sb, nb)` is the root. `r` is the thread's loop over its
// steps (r.x on s, r.y on n). With 128-bit vectors (nchw, `vector` elements: the vector view of
// generators/tensor_view.h), s counts vectors, r.x runs over a step's lanes (then r.y on s, r.z
// on n), and the thread adds into `thread_acc`, kept in registers, which `thread_sums` copies.
struct BlockSums {
    Halide::Var t{"t"}, k{"k"}, c, sb{"sb"}, nb{"nb"};
    Halide::Func thread_sums{"thread_sums"};
    std::vector<Halide::Func> tree;
    Halide::Func total{"block_total"};
    Halide::Func thread_acc{"thread_acc"};  // vector > 1: the thread's sums, summed in registers
    Halide::RDom r;
    Halide::Expr S, N, steps, row_steps;  // the view's extents (S in vectors); the partition
    Halide::Expr span_s, span_n;          // a block's ranges
    Halide::Expr first_s, first_n;        // the block's first element (vector)
    Halide::Expr count;                   // its number of elements, in f64
    int s_lanes = 1, n_lanes = 1;   // threads on s and on n (schedules/gpu_blocks.h)
    int channels = 1;               // channels a GPU block covers
    int vector = 1;                 // elements a step of s reads
};

// A stage's loop, compiled once per runtime condition (the activation code, batch statistics),
// each copy with that condition known: the hot loops carry no switch.
inline void specialize_all(Halide::Stage stage, const std::vector<Halide::Expr>& conditions) {
    for (const Halide::Expr& cond : conditions) stage.specialize(cond);
}

}  // namespace iabn_sched
