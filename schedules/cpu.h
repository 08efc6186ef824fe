// CPU schedules, x86 and ARM alike: each target brings its vector width (natural_vector_size), and
// the numbers come from schedules/<arch>.params (x86.params, arm.params).
//
// Two shapes of work exist in iabn, and each has one schedule here:
//  * channel reductions: per-channel sums over the (s, n) dims of the tensor view;
//  * element-wise updates: an Output that rewrites itself in place (apply, backward apply).
// The algorithm files never say how; they hand their Funcs to these functions together with the
// runtime conditions to specialize the hot loop on (the activation code).
#pragma once

#include "common.h"
#include "dispatch_levels.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace iabn_sched {

// The tunable numbers (tunables.def), named as the generators' GeneratorParams and written by the
// tuner into schedules/<arch>.params, which the build reads.
struct CpuParams {
#define IABN_CPU_TUNABLE(name, value) int name = value;
#include "tunables.def"
};

// The dispatch level a CPU target compiles for (dispatch_levels.h); a target of no level is a
// build error.
inline std::string dispatch_level(const Halide::Target& target) {
    const std::string level = dispatch_level_of(target.to_string());
    if (level.empty()) {
        std::string names;
        for (const DispatchLevel& l : kDispatchLevels) names += std::string(names.empty() ? "" : ", ") + l.name;
        throw std::invalid_argument("target " + target.to_string() + " is of no dispatch level (none of its words is " +
                                    names + ")");
    }
    return level;
}

// Sets the numbers that `levels` ("<level>:<name>:<value>,.../<level>:...", from the build)
// gives for `level`; a name outside `declared` (those the generator's schedule reads) is a build
// error.
inline void apply_level_params(CpuParams& p, const std::string& levels, const std::string& level,
                               const std::vector<std::string>& declared) {
    const std::map<std::string, int*> fields = {
#define IABN_CPU_TUNABLE(name, value) {#name, &p.name},
#include "tunables.def"
    };
    std::stringstream entries(levels);
    for (std::string entry; std::getline(entries, entry, '/');) {
        if (entry.rfind(level + ":", 0) != 0) continue;
        std::stringstream values(entry.substr(level.size() + 1));
        for (std::string value; std::getline(values, value, ',');) {
            const auto colon = value.find(':');
            const std::string name = value.substr(0, colon);
            const auto field = fields.find(name);
            if (colon == std::string::npos || field == fields.end())
                throw std::invalid_argument("iabn generator: bad schedule number '" + value + "' in levels=" + levels);
            if (std::find(declared.begin(), declared.end(), name) == declared.end()) {
                std::string reads;
                for (const std::string& d : declared) reads += (reads.empty() ? "" : ", ") + d;
                throw std::invalid_argument("iabn generator: the params line names '" + name +
                                            "', which this pipeline's schedule does not read (it reads " +
                                            (reads.empty() ? "none" : reads) + "): levels=" + levels);
            }
            *field->second = std::stoi(value.substr(colon + 1));
        }
    }
}

// Lanes of a reduction's accumulators: `vectors` native vectors, i.e. that many independent
// dependency chains per sum.
inline int accumulator_lanes(const Halide::Target& target, Halide::Type t, const CpuParams& p) {
    return target.natural_vector_size(t) * p.vectors;
}

// Lanes of an element-wise loop: one native vector (rows can be short: 49 elements at 7x7).
inline int element_lanes(const Halide::Target& target, Halide::Type t) { return target.natural_vector_size(t); }

// The size of the blocks that split `extent` elements into ceil(extent / min_block) nearly equal
// blocks, at most `max_blocks` of them, each a multiple of `multiple`: a task never runs guarded
// iterations past the end of its row (a fixed block longer than the row would), long rows still
// split into parallel tasks, and the partial results stay bounded. In 64 bits: the simplifier
// rewrites these quotients into forms like extent * (block + 1) / block, which would overflow 32
// bits for rows longer than ~2^31 / block elements.
inline Halide::Expr block_size(const Halide::Expr& extent, int min_block, const Halide::Expr& max_blocks,
                               int multiple) {
    using Halide::Expr;
    using Halide::cast;
    Expr e = cast<int64_t>(extent);
    Expr blocks = Halide::clamp((e + (min_block - 1)) / min_block, cast<int64_t>(1),
                                Halide::max(cast<int64_t>(max_blocks), cast<int64_t>(1)));
    Expr per_block = (e + blocks - 1) / blocks;
    return cast<int32_t>(Halide::max((per_block + (multiple - 1)) / multiple * multiple, cast<int64_t>(multiple)));
}

inline Halide::Expr balanced_block(const Halide::Expr& extent, int block, int lanes) {
    return block_size(extent, block, Halide::Int(32).max(), lanes);
}

// Reductions over the (s, n) elements of each channel of the view x(s, c, n) (ChannelSums,
// common.h). Partial sums are formed per task, in parallel, vectorized, at most
// threads * tasks_per_thread tasks per channel (so their storage is O(C x threads)); they are
// combined in a fixed order, so results do not depend on the thread count or timing.
// `channels` is the view's channel count (dim 1).

// Channels-last sums over many channels: `unroll` rows per pass over the partial sums, which stay
// in registers, where there are at least `unroll_channels` channels (the stage specialized on
// it, which is returned; below that, the plain loop is faster). `row`: the rows' variable.
inline Halide::Stage unroll_wide_rows(Halide::Stage rows, const Halide::Var& c, const Halide::RVar& row, int lanes,
                                      const CpuParams& p, const Halide::Expr& channels) {
    using namespace Halide;
    Var co("co"), cv("cv");
    RVar ro("rxio"), ri("rxii");
    Stage wide = rows.specialize(channels >= p.unroll_channels);
    wide.split(c, co, cv, lanes, TailStrategy::GuardWithIf)
        .split(row, ro, ri, p.unroll, TailStrategy::GuardWithIf)
        .reorder(cv, ri, co, ro)
        .vectorize(cv)
        .unroll(ri);
    return wide;
}

// The direct form: sums(c) over RDom r = [0, S) x [0, N), computed at `at`.
inline void schedule_direct_reduction(Halide::Func sums, const Halide::RDom& r, ViewLayout layout, const CpuParams& p,
                                      const Halide::Target& target, const Halide::Expr& threads,
                                      const Halide::Expr& channels, const std::vector<Halide::Expr>& specializations,
                                      const Halide::LoopLevel& at) {
    using namespace Halide;
    const Var c = sums.args()[0];
    const int lanes = accumulator_lanes(target, sums.types()[0], p);
    const Expr max_tasks = max(threads, 1) * p.tasks_per_thread;
    Var k("k"), j("j"), task("task"), lane("lane");
    RVar rxo("rxo"), rxi("rxi"), rio("rio"), rii("rii"), ryo("ryo"), ryi("ryi");
    sums.compute_at(at);
    const LoopLevel inside(sums, Var::outermost());

    if (layout == ViewLayout::nchw) {
        // Each task: a group of rows (n) times a block of contiguous elements (s) of one channel,
        // summed into `lanes` independent vector accumulators.
        const Expr rows_per_group = block_size(r.y.extent(), 1, max_tasks, 1);
        const Expr groups = (r.y.extent() + rows_per_group - 1) / rows_per_group;
        const Expr s_block = block_size(r.x.extent(), p.block, max_tasks / groups, lanes);
        Func part = sums.update()
                        .split(r.y, ryo, ryi, rows_per_group, TailStrategy::GuardWithIf)
                        .split(r.x, rxo, rxi, s_block, TailStrategy::GuardWithIf)
                        .split(rxi, rio, rii, lanes, TailStrategy::GuardWithIf)
                        .rfactor({{rxo, k}, {rii, lane}, {ryo, j}});
        part.compute_at(inside).reorder_storage(lane, c, k, j);
        part.update().reorder(lane, rio, ryi).vectorize(lane).fuse(c, k, task).fuse(task, j, task).parallel(task);
        specialize_all(part.update(), specializations);
        sums.update();  // combine of the per-task partials: serial, fixed order
    } else {
        // Channels are dense: vectorize across c; each task sums a block of rows.
        const Expr rows = block_size(r.x.extent(), p.rows, max_tasks, 1);
        Func part = sums.update().split(r.x, rxo, rxi, rows, TailStrategy::GuardWithIf).rfactor({{rxo, k}, {r.y, j}});
        part.compute_at(inside).vectorize(c, lanes, TailStrategy::GuardWithIf);
        Stage each_row = part.update();
        if (p.unroll > 1) {
            Stage wide = unroll_wide_rows(each_row, c, rxi, lanes, p, channels);
            wide.fuse(k, j, task).parallel(task);
            specialize_all(wide, specializations);
        }
        each_row.reorder(c, rxi, k, j).vectorize(c, lanes, TailStrategy::GuardWithIf).fuse(k, j, task).parallel(task);
        specialize_all(each_row, specializations);
        sums.update().reorder(c, rxo, r.y).vectorize(c, lanes, TailStrategy::GuardWithIf);
    }
}

// A chunk's own sums, chunk(c, q) over in_chunk, computed at `at` for the channels and chunks
// that level needs. Stored at `store` (outside the loop over chunks: one allocation, folded to
// the chunk being computed), or else at `at`, where `at` covers one chunk of at most
// `stack_channels` channels: then in a fixed-size array on the stack (no allocation per chunk). nchw: the chunk's rows, each vectorized along s into `lanes` accumulators
// that carry on across rows, then one horizontal add per channel and chunk; walked row by row,
// each row across the channels of the region (contiguous in memory for one n). nhwc: a row
// at a time, vectorized across c (with `unroll` rows per pass when channels are many).
inline void schedule_chunk_sums(const ChannelSums& cs, ViewLayout layout, const CpuParams& p, const Halide::Target& target,
                                const Halide::Expr& channels, const std::vector<Halide::Expr>& specializations,
                                const Halide::LoopLevel& at, const Halide::LoopLevel* store, int stack_channels) {
    using namespace Halide;
    Func chunk = cs.chunk;
    const RDom& r = cs.in_chunk;
    const Var c = chunk.args()[0], q = chunk.args()[1];
    const int lanes = accumulator_lanes(target, chunk.types()[0], p);
    auto place = [&](Func f) {
        f.compute_at(at);
        if (store) {
            f.store_at(*store).fold_storage(q, 1);
        } else {
            f.bound_storage(c, stack_channels).bound_storage(q, 1).store_in(MemoryType::Stack);
        }
    };
    place(chunk);
    if (layout == ViewLayout::nchw) {
        Var lane("lane");
        RVar ro("ro"), ri("ri");
        Func lanes_of = chunk.update().split(r.x, ro, ri, lanes, TailStrategy::GuardWithIf).rfactor(ri, lane);
        place(lanes_of);
        lanes_of.reorder_storage(lane, c, q).vectorize(lane);
        lanes_of.update().reorder(lane, ro, c, r.y).vectorize(lane);
        specialize_all(lanes_of.update(), specializations);
    } else {
        chunk.vectorize(c, lanes, TailStrategy::GuardWithIf);
        Stage rows = chunk.update();
        if (p.unroll > 1) specialize_all(unroll_wide_rows(rows, c, r.x, lanes, p, channels), specializations);
        rows.reorder(c, r.x, r.y).vectorize(c, lanes, TailStrategy::GuardWithIf);
        specialize_all(rows, specializations);
    }
}

// The chunked form, two passes: total(c) at `at`, as per-task partial totals in parallel, each
// task computing its chunks one after the other (nchw: a task per channel and group of its
// chunks; nhwc: a task per group of chunks, all channels, vectorized across them, in blocks of at
// most `chunk_channels`, so that a chunk's sums are a fixed-size array on the stack: 32 KB of
// f32 sums at 4096; blocks of 1024 split a 2048-channel row into two sweeps of 4 KB strided by
// 8 KB, which took 7x7x2048 channels-last 15-20% longer than one sweep).
inline void schedule_chunked_reduction(const ChannelSums& cs, ViewLayout layout, const CpuParams& p,
                                       const Halide::Target& target, const Halide::Expr& threads,
                                       const Halide::Expr& channels, const std::vector<Halide::Expr>& specializations,
                                       const Halide::LoopLevel& at) {
    using namespace Halide;
    constexpr int chunk_channels = 4096;
    Func total = cs.total, chunk = cs.chunk;
    const Var c = total.args()[0];
    const RVar k = cs.chunks.x;
    const int lanes = element_lanes(target, total.types()[0]);
    const Expr max_tasks = max(threads, 1) * p.tasks_per_thread;
    Var task("task"), fused("fused"), cb("cb"), co("co"), cv("cv");
    RVar ko("ko"), ki("ki");
    total.compute_at(at);
    const Expr per_task = block_size(cs.chunks.x.extent(), 1, max_tasks, 1);
    Func part = total.update().split(k, ko, ki, per_task, TailStrategy::GuardWithIf).rfactor(ko, task);
    part.compute_at(total, Var::outermost());
    if (layout == ViewLayout::nchw) {
        part.update().reorder(ki, c, task).fuse(c, task, fused).parallel(fused);
        schedule_chunk_sums(cs, layout, p, target, channels, specializations, LoopLevel(part, ki), nullptr, 1);
    } else {
        part.vectorize(c, lanes, TailStrategy::GuardWithIf);
        // (Vectors first, then blocks of them: only the last vector of a row is predicated.)
        part.update()
            .split(c, co, cv, lanes, TailStrategy::GuardWithIf)
            .split(co, cb, co, chunk_channels / lanes, TailStrategy::GuardWithIf)
            .reorder(cv, co, cb, ki, task)
            .vectorize(cv)
            .parallel(task);
        total.vectorize(c, lanes, TailStrategy::GuardWithIf);
        total.update().vectorize(c, lanes, TailStrategy::GuardWithIf);
        schedule_chunk_sums(cs, layout, p, target, channels, specializations, LoopLevel(part, cb), nullptr,
                            chunk_channels);
    }
}

// A two-pass pipeline's reduction: sums computed at the root, each form it has scheduled inside
// it (where it has both, each runs only in its specialization of sums).
inline void schedule_channel_reduction(const ChannelSums& cs, ViewLayout layout, const CpuParams& p,
                                       const Halide::Target& target, const Halide::Expr& threads,
                                       const Halide::Expr& channels, const std::vector<Halide::Expr>& specializations) {
    using namespace Halide;
    if (!cs.has_chunks()) {
        schedule_direct_reduction(cs.sums, cs.all, layout, p, target, threads, channels, specializations, LoopLevel::root());
        return;
    }
    if (!cs.has_direct()) {
        schedule_chunked_reduction(cs, layout, p, target, threads, channels, specializations, LoopLevel::root());
        return;
    }
    Func sums = cs.sums;
    sums.compute_root().specialize(cs.chunked);
    const LoopLevel inside(sums, Var::outermost());
    schedule_direct_reduction(cs.direct, cs.all, layout, p, target, threads, channels, specializations, inside);
    schedule_chunked_reduction(cs, layout, p, target, threads, channels, specializations, inside);
}

// The pivot of the batch statistics (generators/statistics.h): a sum over the first elements of
// each channel, for every channel at once; channels-last, a vector of channels per
// element of the row (a channel at a time would gather one element per cache line).
inline void schedule_pivot(Halide::Func pivot, Halide::Func pivot_sum, ViewLayout layout, const Halide::Target& target) {
    using namespace Halide;
    const Var c = pivot.args()[0];
    pivot.compute_root();
    pivot_sum.compute_root();
    if (layout == ViewLayout::nhwc) {
        const int lanes = element_lanes(target, pivot_sum.types()[0]);
        pivot.vectorize(c, lanes, TailStrategy::GuardWithIf);
        pivot_sum.vectorize(c, lanes, TailStrategy::GuardWithIf);
        pivot_sum.update().reorder(c, pivot_sum.rvars(0).at(0), pivot_sum.rvars(0).at(1)).vectorize(c, lanes, TailStrategy::GuardWithIf);
    }
}

// The vector loop over `v` of an in-place update. Where `whole` holds (one task covers the whole
// range of `v`, and it spans at least one vector), the last vector of the range is shifted
// inwards, over elements this task has already rewritten, and blended with them
// (ShiftInwardsAndBlend: the overlapped lanes store back what they loaded, so nothing is
// rewritten twice, and the loads and stores stay plain: a masked store, as a guarded tail makes,
// costs on AMD CPUs about as much as a short row's other vectors together). Otherwise the tail
// is guarded. Each branch specializes on the runtime `cases`.
inline void vectorize_in_place(Halide::Stage update, const Halide::Var& v, int lanes, const Halide::Expr& whole,
                               const std::vector<Halide::Expr>& cases) {
    using namespace Halide;
    Stage blended = update.specialize(whole);
    blended.vectorize(v, lanes, TailStrategy::ShiftInwardsAndBlend);
    specialize_all(blended, cases);
    update.vectorize(v, lanes, TailStrategy::GuardWithIf);
    specialize_all(update, cases);
}

// out(s, c, n) = undef; out(s, c, n) = f(out(s, c, n), ...): an in-place element-wise update.
// Each task covers about `block` elements: a block of a long row, or a group of short rows (a
// task per row would spend more time in the thread pool than in memory for 7x7 rows).
// GuardWithIf everywhere: an in-place stage must never evaluate an element twice (ShiftInwards
// would) nor touch one outside the buffer (RoundUp would).
inline void schedule_inplace_update(Halide::Func out, ViewLayout layout, const CpuParams& p,
                                    const Halide::Target& target,
                                    const std::vector<Halide::Expr>& specializations) {
    using namespace Halide;
    const Var s = out.args()[0], c = out.args()[1], n = out.args()[2];
    const int lanes = element_lanes(target, out.types()[0]);
    const Expr extent_s = out.output_buffer().dim(0).extent(), extent_c = out.output_buffer().dim(1).extent();
    Var so("so"), si("si"), cn("cn"), cno("cno"), cni("cni"), task("task");
    Stage update = out.update();
    if (layout == ViewLayout::nchw) {
        const Expr rows_per_task = max(p.block / extent_s, 1);
        const Expr s_block = balanced_block(extent_s, p.block, lanes);
        update.fuse(c, n, cn)
            .split(cn, cno, cni, rows_per_task, TailStrategy::GuardWithIf)
            .split(s, so, si, s_block, TailStrategy::GuardWithIf)
            .reorder(si, cni, so, cno)
            .fuse(so, cno, task)
            .parallel(task);
        // (A row split into blocks of several tasks keeps the guard: a shifted vector would reach
        // into the block of another task.)
        vectorize_in_place(update, si, lanes, extent_s <= s_block && extent_s >= lanes, specializations);
    } else {
        const Expr rows_per_task = max(p.block / extent_c, p.rows);
        update.reorder(c, s, n).split(s, so, si, rows_per_task, TailStrategy::GuardWithIf).fuse(so, n, task).parallel(task);
        vectorize_in_place(update, c, lanes, extent_c >= lanes, specializations);
    }
}

// One pass per block of adjacent channels (nchw), blocks in parallel: the block's
// reductions `sums`, the small per-channel Funcs derived from them, the in-place update of the
// block's elements (still in cache from the reduction), and the per-channel outputs, all inside
// one iteration of the block loop (the per-channel outputs are fused into it with compute_with).
// Within a block, memory is walked batch row by batch row: for each n the block's channels are
// contiguous, so the reads run over channels * S elements instead of restarting every S.
// A block holds as many channels as fit `block` elements (at least 1, at most `channels`), so it
// stays in cache between its reduction and its update.
struct FusedChannels {
    Halide::Func out;                            // the in-place element update
    ChannelSums sums;                            // the per-channel reductions over (s, n)
    std::vector<Halide::Func> per_channel;       // small Funcs derived from the sums
    std::vector<Halide::Func> channel_outputs;   // the per-channel Outputs
    std::vector<Halide::Expr> update_cases;      // runtime conditions the update specializes on
    std::vector<Halide::Expr> reduction_cases;   // ... and the reduction
};

inline void schedule_fused_channels(const FusedChannels& f, const CpuParams& p, const Halide::Target& target) {
    using namespace Halide;
    Func out = f.out, sums = f.sums.sums;
    const RDom& r = f.sums.all;
    const Var s = out.args()[0], c = out.args()[1], n = out.args()[2];
    const int lanes = element_lanes(target, out.types()[0]);
    Var lane("lane"), block("block"), ci("ci");
    RVar ro("ro"), ri("ri");
    const Expr channel_elements = cast<int64_t>(r.x.extent()) * r.y.extent();
    const Expr block_channels = cast<int32_t>(clamp(p.block / channel_elements, 1, p.channels));

    Stage update = out.update();
    update.split(c, block, ci, block_channels, TailStrategy::GuardWithIf).reorder(s, ci, n, block).parallel(block);
    // The block's sums, inside its iteration; where there are both forms, each in its
    // specialization of sums.
    sums.compute_at(out, block);
    LoopLevel inside(out, block);
    if (f.sums.has_chunks() && f.sums.has_direct()) {
        sums.specialize(f.sums.chunked);
        inside = LoopLevel(sums, Var::outermost());
    }
    if (f.sums.has_direct()) {
        Func direct = f.sums.direct;
        const int acc_lanes = accumulator_lanes(target, direct.types()[0], p);
        Func part = direct.update().split(r.x, ro, ri, acc_lanes, TailStrategy::GuardWithIf).rfactor(ri, lane);
        part.compute_at(inside).reorder_storage(lane, c).vectorize(lane);
        part.update().reorder(lane, ro, c, r.y).vectorize(lane);
        specialize_all(part.update(), f.reduction_cases);
        direct.compute_at(inside);
    }
    if (f.sums.has_chunks()) {
        // Chunk after chunk, each over all the block's channels, its total added in f64.
        Func total = f.sums.total;
        total.compute_at(inside);
        total.update().reorder(c, f.sums.chunks.x);
        schedule_chunk_sums(f.sums, ViewLayout::nchw, p, target, Expr(), f.reduction_cases,
                            LoopLevel(total, f.sums.chunks.x), &inside, 0);
    }
    for (Func g : f.per_channel) g.compute_at(out, block);
    for (Func g : f.channel_outputs) {
        Stage last = g.has_update_definition() ? g.update() : Stage(g);
        // Same loop names as `update`: compute_with pairs loops by name.
        last.split(g.args()[0], block, ci, block_channels, TailStrategy::GuardWithIf).parallel(block).compute_with(update, block);
    }
    // A task rewrites whole rows.
    vectorize_in_place(update, s, lanes, out.output_buffer().dim(0).extent() >= lanes, f.update_cases);
}

}  // namespace iabn_sched
