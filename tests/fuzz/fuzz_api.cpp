// iabn_fuzz_api: a libFuzzer target on iabn's public API (include/iabn/iabn.h).
//
// Each input becomes one call of iabn::forward or iabn::backward, or a short life of InPlaceABN
// objects (construct, copy, move, forward, backward, destroy), on buffers that all point into
// one real 64 KiB arena (between two PROT_NONE pages) or, when their declared size is absurd,
// into a PROT_NONE guard mapping that no accepted call may touch. See tests/fuzz/README.md for
// how to build and run it, and the input format below.
//
// The oracle, for every call:
//  * iabn::Error thrown: every byte of the arena (and of the InPlaceABN state) is what it was;
//    and the call is not a valid one (below), else "rejected-valid";
//  * any other exception, a crash, a sanitizer report or a hang: a finding;
//  * success: no byte outside the buffers the call may write changed; the call is not one the
//    rules refuse ("accepted-invalid:<rule>"); and, where the data are in the well-scaled domain,
//    every output matches the float64 reference (tests/support/reference.cpp) computed from the
//    bytes as they were before the call, within a tolerance derived from the dtype
//    (tests/support/compare.h). 16-bit tensors (f16, bf16) are read and written through
//    tests/support/half.h; their outputs add one rounding to the f32 budget, and an f16 result
//    beyond 65504 must be inf, never NaN.
// The rules (what must be refused: model(), rules.cpp) are docs/semantics.md's "Bad input" list
// with the validation changes of the runtime: rank outside 2..5; a dimension <= 0; a byte size
// beyond 63 bits, view extents or strides >= 2^31 elements; a null required buffer; a data pointer
// not aligned to its element size; per-channel buffers of the wrong length, dtype or device;
// an activation outside the enum; activation_param <= 0 or non-finite (every activation but
// identity); epsilon outside the normal range of the per-channel dtype (smallest normal to largest
// finite); momentum outside [0, 1]; batch statistics with M < 2; a written buffer overlapping any
// other buffer of the call; running_var < 0 or NaN with global statistics; a zero or subnormal
// effective scale in backward; a dtype outside the enum (f16, bf16, f32, f64: f16 and bf16
// tensors take f32 per-channel buffers); Device::cuda (no driver here); a moved-from InPlaceABN.
// What the rules leave open (buffers the call does not use, momentum in backward) may be accepted
// or refused.
//
// Modes (first byte % 4): 0, 1 "general": anything, from menus of ordinary and wild values;
// 2 "valid": a call the harness builds to be valid (an iabn::Error is a finding); 3 InPlaceABN.
//
// Input format: a stream of choice bytes read from the front; reading past the end gives 0, and
// 0 is the most ordinary choice of every menu. After the mode byte: 8 bytes seed the generator
// of the data values (moderate, finite values per channel: ordinary, |mean| = up to 1e4 x std,
// constant channels, ELU-saturating channels, and in 16 bits ELU channels at the edge of
// saturation), then the call's choices in the order the code reads them (threads below;
// build_calls.cpp: options, dtype, rank, dims, placement of every buffer, ...; data.cpp;
// inplace_abn_mode.cpp).
//
// Environment: IABN_FUZZ_KEEP_GOING=1 reports each kind of finding once (on stderr, and the
// input into IABN_FUZZ_FINDINGS_DIR when set) and goes on, instead of aborting on the first
// (=all: reports every one);
// IABN_FUZZ_IGNORE=rule,rule (e.g. overlap,epsilon) treats those rules as open; IABN_FUZZ_SKIP=rule,...
// does not make the calls those rules refuse, "copy" no InPlaceABN copies; IABN_FUZZ_ONLY=<kind prefix> reports only those findings (to minimize a reproducer of
// one kind with -minimize_crash=1); IABN_FUZZ_VERBOSE=1 prints every call.
//
// This file holds the entry points; the harness is split along its jobs, one file each (harness.h
// lists them). replay_main.cpp runs inputs without libFuzzer (ctest fuzz_regressions).
#include "harness.h"

#include <cstdlib>

using namespace iabn_fuzz;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    init();
    std::atexit(summary);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    g_input = data;
    g_input_size = size;
    Choices in(data, size);
    const int mode = in.pick(4);
    Rng rng(in.u64());
    static const int threads_menu[] = {2, 1, 3, 4};
    const int threads = threads_menu[in.pick(4)];
    if (mode == 3) {
        inplace_abn_mode(in, rng, threads);
        return 0;
    }
    Gen g{in, rng, 0, {}};
    Call c;
    c.threads = threads;
    if (mode == 2) {
        valid_call(g, c);
    } else if (!general_call(g, c)) {
        return 0;  // a buffer the rules accept but the arena cannot back: not a call to make
    }
    fill(in, rng, c, mode == 2);
    if (mode == 2) {
        const Verdict v = model(c, setup().arena, nullptr);
        if (!v.must_accept()) {
            harness_bug("valid-mode call is not valid: " + describe(c) + ": " +
                        (v.refuse.empty() ? v.open[0] : v.refuse[0]));
        }
    }
    run_functional(c);
    return 0;
}
