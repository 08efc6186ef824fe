// GPU schedules (CUDA and OpenCL): the same kinds of work as cpu.h, for a target with a GPU
// feature.
//
//  * a training pass's reductions: block partials (schedule_gpu_block_partials: each block of the
//    partition of schedules/gpu_blocks.h adds its share of a channel, then its threads' sums in a
//    fixed tree in shared memory), then a finish (schedule_gpu_channel_finish: a thread per
//    channel adds its blocks in order, in registers). Deterministic: no atomics, fixed orders,
//    the same bits from run to run;
//  * element-wise in-place updates: the tensor flattened to one dimension (contiguous in both
//    layouts), one element (or one 128-bit vector) per thread, `threads` threads per block;
//  * per-channel Funcs (coefficients, saved and running statistics): one thread per channel.
//
// The tunable numbers are GpuParams' (threads, channel_block): the build passes them from
// schedules/cuda.params or opencl.params (generators/tunables.h says which generator reads
// which), the defaults below otherwise. The blocks of a training pass's reductions
// (gpu_blocks.h) are fixed: the runtime computes the same partition.
#pragma once

#include "common.h"
#include "gpu_blocks.h"

namespace iabn_sched {

struct GpuParams {
#define IABN_GPU_TUNABLE(name, value) int name = value;
#include "tunables.def"  // threads, channel_block
    int launch_rows = 65535;    // element-wise, nchw: batch rows per launch (the grid's y limit)
    int launch_elements = 1 << 30;  // element-wise, channels-last: elements per launch (< 2^31)
    // Vector views (generators/tensor_view.h): a thread's lanes as one vector load and store, or
    // unrolled. Halide 21's OpenCL code generator fails on the activations' strict-float vector
    // compares (an internal error in EliminateBoolVectors), so OpenCL unrolls: same threads and
    // indices, scalar accesses.
    bool vector_loads = true;
};

// The GPU numbers for a target.
inline GpuParams gpu_params(const Halide::Target& target) {
    GpuParams p;
    p.vector_loads = !target.has_feature(Halide::Target::OpenCL);
    return p;
}

// The pure `undef` stage of an in-place Output computes nothing, but left unscheduled it is a
// host loop, and Halide then requires the Output's host pointer (device-only buffers fail with
// "host pointer ... is null, but the pipeline will access it on the host"). Put it on the GPU.
// (No kernel is launched for it: a stage without stores leaves no loop.)
inline void schedule_gpu_undef_stage(Halide::Func out) { out.gpu_single_thread(); }

// One thread per channel for a Func over c, every stage of it.
inline void schedule_gpu_per_channel(Halide::Func f, const GpuParams& p) {
    using namespace Halide;
    const Var c = f.args()[0];
    Var cb("cb"), ci("ci");
    f.gpu_tile(c, cb, ci, p.channel_block, TailStrategy::GuardWithIf);
    for (int i = 0; i < f.num_update_definitions(); i++) {
        f.update(i).gpu_tile(c, cb, ci, p.channel_block, TailStrategy::GuardWithIf);
    }
}

// Several Funcs over c computed in one kernel (one launch instead of one each): the last stage
// of each, a thread per channel, fused with compute_with; earlier stages (an in-place Output's
// `undef`) have no work.
inline void schedule_gpu_channel_outputs(const std::vector<Halide::Func>& funcs, const GpuParams& p) {
    using namespace Halide;
    Var cb("cb"), ci("ci");
    auto last = [](Func f) { return f.has_update_definition() ? f.update(f.num_update_definitions() - 1) : Stage(f); };
    for (size_t i = 0; i < funcs.size(); i++) {
        if (funcs[i].has_update_definition()) schedule_gpu_undef_stage(funcs[i]);
        Stage s = last(funcs[i]);
        s.split(funcs[i].args()[0], cb, ci, p.channel_block, TailStrategy::GuardWithIf).gpu_blocks(cb).gpu_threads(ci);
        if (i > 0) s.compute_with(last(funcs[0]), cb);
    }
}

// The finish of a GPU training pass (and the merges of the synchronized passes): a thread per
// channel merges the channel's blocks (or processes' rows) in order (`sums`, in registers), then
// computes every per-channel output (`finish`, one Tuple-valued Func). One kernel; nothing at
// root, so no device allocation.
inline void schedule_gpu_channel_finish(Halide::Func sums, Halide::Func finish, const GpuParams& p) {
    using namespace Halide;
    schedule_gpu_per_channel(finish, p);
    sums.compute_at(finish, Var("ci"));  // (schedule_gpu_per_channel's thread loop)
}

// A synchronized pass's row of partials (2C + 1 values) from block partials: a thread per value,
// each merging the one channel it reads in its registers (`merges`: one Func per kind of value).
inline void schedule_gpu_row(Halide::Func row, const std::vector<Halide::Func>& merges, const GpuParams& p) {
    using namespace Halide;
    Var ib("ib"), ii("ii");
    row.gpu_tile(row.args()[0], ib, ii, p.channel_block, TailStrategy::GuardWithIf);
    for (Func m : merges) m.compute_at(row, ii);
}

// The grid: CUDA allows 2^31 - 1 blocks on x but only 65535 on y and z, so every count that
// grows with the tensor (blocks of elements, rows, batch) is fused onto x, or split into host
// loops of launches. Halide's loop variables are 32-bit: a single launch covers fewer than 2^31
// elements (p.launch_elements), more take several launches.

// A GPU block's sums (generators/block_partials.h: its threads' sums, then the tree's levels one
// after another in shared memory, Halide putting a barrier between them), computed at `at`'s GPU
// block loop `blk`, inside which the channel dimension has extent b.channels (1 in nchw):
//  * nchw: the threads t on x (a warp on 32 consecutive elements of a row);
//  * channels-last: the threads (channel, t): a warp reads b.channels consecutive channels of
//    32 / b.channels consecutive rows (gpu_blocks.h, GpuBlockLanes).
// Each GPU block computes its own block's sums: extents fixed per GPU block (also the shared
// memory's size, with no host loop to find it). `per_channel`: small Funcs over c the thread sums
// read (the backward's bias and 1/g), computed once per block. With vectors (b.vector > 1), a
// thread adds in its registers (thread_acc), a step's lanes read as one vector.
inline void schedule_gpu_block_sums(const BlockSums& b, Halide::Func at, const Halide::Var& blk, ViewLayout layout,
                                    const std::vector<Halide::Func>& per_channel,
                                    const std::vector<Halide::Expr>& specializations, const GpuParams& p) {
    using namespace Halide;
    auto on_threads = [&](Stage s) {
        if (layout == ViewLayout::nchw) {
            s.reorder(b.c, b.sb, b.nb, b.t).gpu_threads(b.t);
        } else {
            s.reorder(b.sb, b.nb, b.c, b.t).gpu_threads(b.c, b.t);
        }
    };
    auto per_block = [&](Func f) { f.compute_at(at, blk).bound_extent(b.sb, 1).bound_extent(b.nb, 1); };
    Func thread_sums = b.thread_sums;  // (a handle)
    per_block(thread_sums);
    thread_sums.bound(b.t, 0, b.s_lanes * b.n_lanes);
    on_threads(thread_sums);
    if (b.vector > 1) {
        // The thread's sums in registers, a step's lanes read as one vector and added by a
        // vector_reduce_add in a fixed order. (A race-free reduction over r.x, which Halide will
        // vectorize only when told it is atomic; in registers the atomic costs nothing: the PTX
        // has no atomic instruction.) OpenCL unrolls the lanes instead (GpuParams::vector_loads).
        Func acc = b.thread_acc;
        acc.compute_at(thread_sums, b.t).store_in(MemoryType::Register);
        if (p.vector_loads) {
            acc.update().atomic(true).vectorize(b.r.x);
        } else {
            acc.update().unroll(b.r.x);
        }
        specialize_all(acc.update(), specializations);
    } else {
        on_threads(thread_sums.update());  // (its RDom stays innermost: the thread's serial loops)
        specialize_all(thread_sums.update(), specializations);
    }
    int extent = b.s_lanes * b.n_lanes;
    for (const Func& level : b.tree) {
        extent /= 2;
        Func f = level;
        per_block(f);
        f.bound(b.t, 0, extent);
        on_threads(f);
    }
    for (Func f : per_channel) {
        f.compute_at(at, blk).gpu_threads(f.args()[0]);
    }
}

// A GPU training pass's partials (generators/block_partials.h): partials(k, c, sb, nb), the few
// values of each block of the partition, one GPU block each (channels on x: any number of them;
// a channel's blocks on y and z); the block's values stored by its first threads.
inline void schedule_gpu_block_partials(Halide::Func partials, const BlockSums& b, ViewLayout layout,
                                        const std::vector<Halide::Func>& per_channel,
                                        const std::vector<Halide::Expr>& specializations, const GpuParams& p) {
    using namespace Halide;
    Var cb("cb"), ci("ci");
    partials.bound(b.k, 0, partials.output_buffer().dim(0).extent());
    // (Blocks per channel are at most 256, gpu_blocks.h: sb and nb fit y and z.)
    if (layout == ViewLayout::nchw) {
        partials.reorder(b.k, b.c, b.sb, b.nb).gpu_blocks(b.c, b.sb, b.nb).gpu_threads(b.k);
    } else {
        partials.split(b.c, cb, ci, b.channels, TailStrategy::GuardWithIf)
            .reorder(ci, b.k, cb, b.sb, b.nb)
            .gpu_blocks(cb, b.sb, b.nb)
            .gpu_threads(ci, b.k);
    }
    schedule_gpu_block_sums(b, partials, layout == ViewLayout::nchw ? b.c : cb, layout, per_channel, specializations, p);
}

// The resident variant's first kernel (nchw, gpu_blocks.h): a GPU block per channel adds the
// channel's one block (schedule_gpu_block_sums), then its first thread merges it and computes
// every per-channel output (`finish`, one Tuple-valued Func; `sums`, the merge, in registers).
// Per-channel Funcs the thread sums read stay inline here: computed at the block, Halide 21 drops
// the kernel's body (gpu_backward_resident_generator.cpp).
inline void schedule_gpu_resident(Halide::Func finish, Halide::Func sums, const BlockSums& b,
                                  const std::vector<Halide::Expr>& specializations) {
    using namespace Halide;
    Var cb("cb"), ci("ci");
    finish.split(b.c, cb, ci, 1).gpu_blocks(cb).gpu_threads(ci);
    sums.compute_at(finish, ci);
    schedule_gpu_block_sums(b, finish, cb, ViewLayout::nchw, {}, specializations, GpuParams{});  // (no vectors)
}

// out(s, c, n) = undef; out(s, c, n) = f(out(s, c, n), ...): in place, one element (or one
// vector) per thread, consecutive threads on consecutive elements. `out` has the view (s, c, n),
// or the vector view (lane, dense in vectors, other, n) of generators/tensor_view.h, whose lanes
// are one 128-bit load and store of a thread.
//  * nchw: (dense, c) fused (fewer than 2^31: a view stride) on x, the batch rows on y in
//    launches of at most 65535 rows;
//  * channels-last: (dense, rows) fused in launches of at most `launch_elements` elements, each
//    on x.
// (Fusing divides once per thread to find the thread's channel: per element in the scalar
// variant, per vector in the vector one.)
inline void schedule_gpu_inplace_update(Halide::Func out, ViewLayout layout,
                                        const std::vector<Halide::Expr>& specializations,
                                        const GpuParams& p) {
    using namespace Halide;
    const std::vector<Var> a = out.args();
    const bool vectors = a.size() == 4;
    const int dense = vectors ? 1 : dense_dim(layout), other = vectors ? 2 : 1 - dense_dim(layout),
              batch = vectors ? 3 : 2;
    const Var d = a[dense], o = a[other], n = a[batch];
    Var inner("inner"), fb("fb"), fi("fi"), no("no"), ni("ni"), oo("oo"), oi("oi");
    Stage update = out.update();
    // (Split factors no larger than the extents: a guarded split keeps the whole factor.)
    const OutputImageParam buffer = out.output_buffer();
    const Expr extent_d = buffer.dim(dense).extent(), extent_o = buffer.dim(other).extent(),
               extent_n = buffer.dim(batch).extent();
    if (layout == ViewLayout::nchw) {
        update.fuse(d, o, inner)
            .split(n, no, ni, min(extent_n, p.launch_rows), TailStrategy::GuardWithIf)
            .split(inner, fb, fi, p.threads, TailStrategy::GuardWithIf)
            .reorder(fi, fb, ni, no)
            .gpu_blocks(fb, ni)
            .gpu_threads(fi);
    } else {
        // Rows per launch: as many as keep (dense, rows) below launch_elements (at least one).
        Expr rows = clamp(p.launch_elements / extent_d, 1, extent_o);
        update.reorder(d, o, n)
            .split(o, oo, oi, rows, TailStrategy::GuardWithIf)
            .fuse(d, oi, inner)
            .split(inner, fb, fi, p.threads, TailStrategy::GuardWithIf)
            .reorder(fi, fb, oo, n)
            .gpu_blocks(fb)
            .gpu_threads(fi);
    }
    if (vectors && p.vector_loads) update.vectorize(a[0]);  // (the lanes: the innermost dim)
    if (vectors && !p.vector_loads) update.unroll(a[0]);
    specialize_all(update, specializations);
    schedule_gpu_undef_stage(out);
}

}  // namespace iabn_sched
