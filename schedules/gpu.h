// GPU (CUDA) schedules: the same two shapes of work as cpu.h, for a target with a GPU feature.
//
//  * channel reductions: two stages, both deterministic (no atomics, a fixed order of additions,
//    so repeated runs give the same bits): many blocks form partial sums with coalesced reads,
//    then a thread per channel and lane adds them, and a thread per channel adds the lanes;
//  * element-wise in-place updates: the tensor flattened to one dimension (contiguous in both
//    layouts), one element per thread, 256 threads per block;
//  * per-channel Funcs (coefficients, saved and running statistics): one thread per channel.
//
// The tunable numbers are named constants here (GPU tuning needs a GPU; the tuner is CPU-only).
#pragma once

#include "common.h"

namespace iabn_sched {

struct GpuParams {
    int threads = 256;          // threads per block of element-wise and nchw reduction kernels
    int chunk_steps = 64;       // nchw reductions: a block sums threads * chunk_steps elements of a row
    int channel_threads = 32;   // nhwc reductions: channels per block (one warp, coalesced reads)
    int rows_per_block = 256;   // nhwc reductions: rows each block sums
    int row_lanes = 8;          // nhwc reductions: threads per channel in a block (rows interleaved)
    int channel_block = 64;     // per-channel Funcs: channels per block
};

// The pure `undef` stage of an in-place Output computes nothing, but left unscheduled it is a
// host loop, and Halide then requires the Output's host pointer (device-only buffers fail with
// "host pointer ... is null, but the pipeline will access it on the host"). Put it on the GPU.
// (No kernel is launched for it: a stage without stores leaves no loop.)
inline void schedule_gpu_undef_stage(Halide::Func out) { out.gpu_single_thread(); }

// One thread per channel for a Func over c, every stage of it.
inline void schedule_gpu_per_channel(Halide::Func f, const GpuParams& p = GpuParams()) {
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
inline void schedule_gpu_channel_outputs(const std::vector<Halide::Func>& funcs, const GpuParams& p = GpuParams()) {
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

// sums(c): a (Tuple-valued) reduction over RDom r = [0, S) x [0, N) of the view x(s, c, n).
inline void schedule_gpu_channel_reduction(Halide::Func sums, const Halide::RDom& r, ViewLayout layout,
                                           const std::vector<Halide::Expr>& specializations,
                                           const GpuParams& p = GpuParams()) {
    using namespace Halide;
    const Var c = sums.args()[0];
    Var t("t"), j("j"), k("k"), cb("cb"), ci("ci");
    RVar rxo("rxo"), rxi("rxi");
    sums.compute_root();
    if (layout == ViewLayout::nchw) {
        // Stage 1, a block per (channel, chunk of a batch row, batch row), `threads` lanes: lane
        // t sums the elements t, t + threads, ... of its chunk, so a warp reads consecutive
        // addresses; chunks of `threads * chunk_steps` elements give long rows (large M, few
        // channels) many blocks.
        RVar rko("rko"), rkr("rkr");
        Var chunk("chunk");
        Func part = sums.update()
                        .split(r.x, rko, rkr, p.threads * p.chunk_steps, TailStrategy::GuardWithIf)
                        .split(rkr, rxo, rxi, p.threads, TailStrategy::GuardWithIf)
                        .rfactor({{rxi, t}, {rko, chunk}, {r.y, j}});
        part.compute_root().reorder(t, c, chunk, j).gpu_blocks(c, chunk, j).gpu_threads(t);
        part.update().reorder(rxo, t, c, chunk, j).gpu_blocks(c, chunk, j).gpu_threads(t);
        specialize_all(part.update(), specializations);
        // Stage 2, a thread per (channel, lane) adds its lane over the chunks and batch rows; the
        // combine left in `sums` then adds the lanes of a channel (one thread per channel).
        Func lanes = sums.update().rfactor(rxi, k);
        lanes.compute_root().gpu_tile(k, c, cb, ci, p.threads, 1, TailStrategy::GuardWithIf);
        lanes.update().gpu_tile(k, c, cb, ci, p.threads, 1, TailStrategy::GuardWithIf);
    } else {
        // Stage 1, a block per (32 channels, `rows_per_block` rows) of 32 x `row_lanes` threads:
        // thread (ci, u) sums rows u, u + row_lanes, ... of the block in its channel, so a warp
        // (32 consecutive ci) reads 32 consecutive channels of a row.
        RVar rko("rko"), rkr("rkr");
        Var u("u"), lane("lane");
        Func part = sums.update()
                        .split(r.x, rko, rkr, p.rows_per_block, TailStrategy::GuardWithIf)
                        .split(rkr, rxo, rxi, p.row_lanes, TailStrategy::GuardWithIf)
                        .rfactor({{rko, k}, {rxi, u}, {r.y, j}});
        part.compute_root()
            .split(c, cb, ci, p.channel_threads, TailStrategy::GuardWithIf)
            .reorder(ci, u, cb, k, j)
            .gpu_blocks(cb, k, j)
            .gpu_threads(ci, u);
        part.update()
            .split(c, cb, ci, p.channel_threads, TailStrategy::GuardWithIf)
            .reorder(rxo, ci, u, cb, k, j)
            .gpu_blocks(cb, k, j)
            .gpu_threads(ci, u);
        specialize_all(part.update(), specializations);
        // Stage 2, a thread per (channel, row lane) adds its lane over the row blocks; the combine
        // left in `sums` then adds the lanes of a channel (one thread per channel).
        Func lanes = sums.update().rfactor(rxi, lane);
        lanes.compute_root().gpu_tile(c, lane, cb, ci, p.channel_threads, p.row_lanes, TailStrategy::GuardWithIf);
        lanes.update().gpu_tile(c, lane, cb, ci, p.channel_threads, p.row_lanes, TailStrategy::GuardWithIf);
    }
    schedule_gpu_per_channel(sums, p);  // after the rfactors, which would inherit it
}

// out(s, c, n) = undef; out(s, c, n) = f(out(s, c, n), ...): in place, one element per thread.
// Flattened, the view is contiguous in both layouts (s, c, n for nchw; c, s for channels-last),
// so consecutive threads touch consecutive elements.
inline void schedule_gpu_inplace_update(Halide::Func out, ViewLayout layout,
                                        const std::vector<Halide::Expr>& specializations,
                                        const GpuParams& p = GpuParams()) {
    using namespace Halide;
    const Var s = out.args()[0], c = out.args()[1], n = out.args()[2];
    Var inner("inner"), flat("flat"), fb("fb"), fi("fi");
    Stage update = out.update();
    if (layout == ViewLayout::nchw) {
        update.fuse(s, c, inner).fuse(inner, n, flat);
    } else {
        update.reorder(c, s, n).fuse(c, s, inner).fuse(inner, n, flat);  // the view's stride 1 is on c
    }
    update.gpu_tile(flat, fb, fi, p.threads, TailStrategy::GuardWithIf);
    specialize_all(update, specializations);
    schedule_gpu_undef_stage(out);
}

}  // namespace iabn_sched
