// How a GPU training pass shares each channel's elements among blocks: one rule, without Halide,
// read by the generators (generators/block_partials.h: which elements a block adds, and in which
// order), the GPU schedules (schedules/gpu.h: the threads) and the runtime (runtime/plan.h: the
// partition it passes to the kernels for a shape).
//
// A channel's elements form N rows of S (the view (s, c, n)). The partition splits s into
// `s_blocks` ranges of steps * s_lanes elements and n into `n_blocks` ranges of row_steps *
// n_lanes rows; block (sb, nb) of channel c adds the elements of its two ranges. Within a block,
// thread (ts, tn) adds s = ts, ts + s_lanes, ... and n = tn, tn + n_lanes, ... of its ranges (so a
// warp reads consecutive elements; nothing is divided per element), then the block adds its
// threads' sums in a fixed tree (bit-identical from run to run). Every block of a partition covers
// the same ranges in every channel, so one (sb, nb) holds the same number of elements in each.
#pragma once

#include <algorithm>
#include <cstdint>

namespace iabn_sched {

// Threads of a block on s and on n, and the channels it covers. nchw (s dense): a warp on 32
// consecutive elements of a row, 8 rows at once, one channel. Channels-last (c dense, the view's
// s counts rows and n is 1): the block's first thread dimension runs over `channels` consecutive
// channels (schedules/gpu.h), the other over rows: 256 threads in all. With 32 channel lanes a
// warp reads 32 channels of a row; with fewer, several consecutive rows: a tensor of C < 32
// channels takes the narrowest of 4, 8 or 16 lanes that holds C (gpu_channel_lanes()), so its
// warps read whole rows instead of leaving lanes idle (a variant of the partials kernels each).
struct GpuBlockLanes {
    int s_lanes, n_lanes, channels;
    int threads() const { return s_lanes * n_lanes; }  // per channel
};
constexpr int gpu_block_threads = 256;
constexpr GpuBlockLanes gpu_block_lanes_nchw{32, 8, 1};
inline int gpu_channel_lanes(int64_t channels) {
    for (int lanes : {4, 8, 16}) {
        if (channels <= lanes) return lanes;
    }
    return 32;
}
inline GpuBlockLanes gpu_block_lanes_nhwc(int channel_lanes) {
    return {gpu_block_threads / channel_lanes, 1, channel_lanes};
}

// The most elements a 128-bit vector holds (16-bit dtypes).
constexpr int gpu_max_vector = 8;

// The f64 values each block stores (generators/block_partials.h: a count and two sums).
constexpr int gpu_block_values = 3;

// The partition of a shape (the kernels' Inputs `steps` and `row_steps`; the partials' extents).
struct GpuPartition {
    int32_t steps = 1, row_steps = 1;  // per thread, on s and on n
    int64_t s_blocks = 1, n_blocks = 1;
    int64_t blocks_per_channel() const { return s_blocks * n_blocks; }
    // The f64 values of the block partials of `channels` channels.
    int64_t values(int64_t channels) const { return gpu_block_values * channels * blocks_per_channel(); }
};

// About `elements_per_block` elements a block (enough work to hide a block's start and its tree),
// and at most as many blocks per channel as keep the grid a few thousand blocks (the finish adds a
// channel's blocks one after another: their count bounds its time).
constexpr int64_t gpu_elements_per_block = 8192;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline GpuPartition gpu_partition(int64_t s, int64_t channels, int64_t n, bool channels_last) {
    const GpuBlockLanes lanes = channels_last ? gpu_block_lanes_nhwc(gpu_channel_lanes(channels)) : gpu_block_lanes_nchw;
    const int64_t channel_groups = ceil_div(channels, lanes.channels);
    const int64_t most = std::clamp<int64_t>(4096 / channel_groups, 8, 256);
    const int64_t wanted = std::clamp<int64_t>(ceil_div(s * n, gpu_elements_per_block), 1, most);
    GpuPartition p;
    // Rows first (whole rows keep a block's reads in long runs), then ranges of s.
    p.n_blocks = std::min(ceil_div(n, lanes.n_lanes), wanted);
    p.row_steps = static_cast<int32_t>(ceil_div(n, p.n_blocks * lanes.n_lanes));
    p.n_blocks = ceil_div(n, int64_t{p.row_steps} * lanes.n_lanes);
    const int64_t s_ranges = std::clamp<int64_t>(wanted / p.n_blocks, 1, ceil_div(s, lanes.s_lanes));
    p.steps = static_cast<int32_t>(ceil_div(s, s_ranges * lanes.s_lanes));
    // nchw rows cut into several ranges: a range a whole number of 128-bit vectors of any dtype
    // (8 elements), so that the vector partials, whose threads step over vectors, cut them alike
    // (gpu_vector_steps()).
    if (!channels_last && ceil_div(s, int64_t{p.steps} * lanes.s_lanes) > 1) {
        p.steps = static_cast<int32_t>(ceil_div(p.steps, gpu_max_vector) * gpu_max_vector);
    }
    p.s_blocks = ceil_div(s, int64_t{p.steps} * lanes.s_lanes);
    return p;
}

// The vector partials' steps (nchw, `vector` elements a vector): the partition's, in vectors.
// Where a row has one range, the one range covers it (count and bounds use the row's end), else
// p.steps is a whole number of vectors.
inline int32_t gpu_vector_steps(const GpuPartition& p, int vector) {
    return static_cast<int32_t>(ceil_div(p.steps, vector));
}

// The resident variant (nchw): one block per channel adds all of the channel's elements and
// computes its per-channel outputs in the same kernel (no finish kernel, no partials in memory),
// then the apply re-reads the channel. Worth it where a channel is short (the one block is not
// starved for work: at most gpu_resident_elements) and there are channels enough for a grid that
// fills the GPU (a block each: at least gpu_resident_channels); the tensors of such layers (ResNet's
// 28x28, 14x14 and 7x7 stages at batch 32) are a few tens of MB, which the L2 of an A100, H100 or
// H200 (40-50 MB) mostly holds between the two kernels.
constexpr int64_t gpu_resident_elements = 32768;
constexpr int64_t gpu_resident_channels = 256;

inline bool gpu_resident_suits(int64_t s, int64_t channels, int64_t n) {
    return s * n <= gpu_resident_elements && channels >= gpu_resident_channels;
}

// The partition of the resident variant: the channel's one block covers all of it.
inline GpuPartition gpu_resident_partition(int64_t s, int64_t n) {
    const GpuBlockLanes lanes = gpu_block_lanes_nchw;
    GpuPartition p;
    p.steps = static_cast<int32_t>(ceil_div(s, lanes.s_lanes));
    p.row_steps = static_cast<int32_t>(ceil_div(n, lanes.n_lanes));
    return p;
}

}  // namespace iabn_sched
