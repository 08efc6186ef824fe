// iabn_fuzz_api: running a call and judging it (harness.h): the rules' verdict, the exception,
// the bytes it wrote, then the numerics.
#include "harness.h"

#include <cstdio>
#include <cstring>
#include <exception>

namespace iabn_fuzz {

namespace {

// Byte ranges of the arena the call may write.
std::vector<std::pair<size_t, size_t>> writable(const Call& c) {
    std::vector<std::pair<size_t, size_t>> out;
    auto add = [&](const Buf& b) {
        if (b.where == Where::arena && b.bytes) out.push_back({b.offset, std::min<size_t>(kArena, b.offset + *b.bytes)});
    };
    if (!c.backward) add(c.x);
    if (c.backward) add(c.dz);
    for (int i = 0; i < kChannelBuffers; i++) {
        if (c.written(i)) add(c.ch[i]);
    }
    return out;
}

}  // namespace

// Runs `call` and judges it. `heap_before`/`heap_after`: the InPlaceABN state (per-channel
// buffers on the heap) before, and a reader of it after; empty for functional calls.
void run(const Call& c, const std::function<void()>& call, const std::vector<unsigned char>* heap_before,
         const std::function<std::vector<unsigned char>(int)>& heap_now) {
    Setup& s = setup();
    g_calls++;
    std::vector<unsigned char> before(s.arena, s.arena + kArena);
    const Verdict v = model(c, before.data(), heap_before);
    {
        // A buffer at the guard is only for calls the rules refuse (or buffers they do not use).
        const Verdict strict = model(c, before.data(), heap_before, false);
        for (int i = 0; i < kChannelBuffers; i++) {
            if (c.ch[i].where == Where::guard && !strict.must_refuse() && c.used(i)) {
                harness_bug("guard buffer in " + describe(c));
            }
        }
        if ((c.x.where == Where::guard || c.dz.where == Where::guard) && !strict.must_refuse()) {
            harness_bug("guard tensor in " + describe(c));
        }
        for (const std::string& r : strict.refuse) {
            if (s.skipped.count(r.substr(0, r.find(':')))) return;  // IABN_FUZZ_SKIP
        }
    }
    if (s.verbose) {
        std::fprintf(stderr, "iabn_fuzz: %s -> %s\n", describe(c).c_str(),
                     v.must_refuse() ? ("refuse (" + v.refuse[0] + ")").c_str()
                     : v.must_accept() ? "accept"
                                       : ("open (" + v.open[0] + ")").c_str());
    }
    iabn::set_num_threads(c.threads);
    bool threw = false;
    std::string message;
    try {
        call();
    } catch (const iabn::Error& e) {
        threw = true;
        message = e.what();
    } catch (const std::exception& e) {
        finding("wrong-exception", describe(c) + ": threw a std::exception that is not iabn::Error: " + e.what());
        return;
    } catch (...) {
        finding("wrong-exception", describe(c) + ": threw something that is not a std::exception");
        return;
    }
    const bool arena_same = std::memcmp(before.data(), s.arena, kArena) == 0;
    bool heap_same = true;
    if (heap_before) {
        for (int i = 0; i < kChannelBuffers; i++) heap_same = heap_same && heap_now(i) == heap_before[i];
    }
    if (threw) {
        g_refused++;
        if (!arena_same || !heap_same) {
            finding("error-wrote-buffers", describe(c) + ": threw \"" + message + "\" after writing " +
                                               (arena_same ? "the InPlaceABN state" : "the arena"));
        }
        if (v.must_accept()) finding("rejected-valid", describe(c) + ": threw \"" + message + "\"");
        return;
    }
    // Accepted: nothing outside the outputs changed.
    const auto ranges = writable(c);
    for (size_t i = 0; i < kArena; i++) {
        if (before[i] == s.arena[i]) continue;
        bool ok = false;
        for (const auto& r : ranges) ok = ok || (i >= r.first && i < r.second);
        if (!ok) {
            finding("wrote-outside-outputs", describe(c) + ": arena byte " + std::to_string(i) + " changed");
            return;
        }
    }
    if (v.must_refuse()) {
        const std::string& first = v.refuse[0];
        finding("accepted-invalid:" + first.substr(0, first.find(':')), describe(c) + ": accepted, but " + first);
        return;
    }
    if (v.ignored) {  // an ignored rule: the call may be one the reference does not describe
        g_unchecked++;
        return;
    }
    // Numerics, from the bytes before the call.
    const Layout lay = c.o.layout;
    const int64_t C = channels_of(c.x.ref.shape, lay);
    auto input = [&](int i) {
        const Buf& b = c.ch[i];
        if (!b.given() || !c.used(i)) return std::vector<double>();
        if (!readable(b) || b.ref.shape != std::vector<int64_t>{C}) harness_bug("unreadable input in " + describe(c));
        return values(b, before.data(), heap_before ? heap_before[i].data() : nullptr);
    };
    auto after = [&](int i) {
        const Buf& b = c.ch[i];
        if (b.where == Where::heap) {
            std::vector<unsigned char> bytes = heap_now(i);
            return values(b, nullptr, bytes.data());
        }
        return values(b, s.arena);
    };
    Inputs in;
    in.w = input(W);
    in.b = input(B);
    if (!c.backward) {
        in.rm = input(RM);
        in.rv = input(RV);
        check_forward_numerics(c, values(c.x, before.data()), in, after, values(c.x, s.arena));
    } else {
        if (c.batch()) in.si = input(SI);
        else in.rv = input(RV);
        check_backward_numerics(c, values(c.x, before.data()), values(c.dz, before.data()), in, after,
                                values(c.dz, s.arena));
    }
}

void run_functional(const Call& c) {
    run(
        c,
        [&] {
            if (c.backward) {
                iabn::backward(c.x.ref, c.dz.ref, c.state(), c.grads(), c.o);
            } else {
                iabn::forward(c.x.ref, c.state(), c.o);
            }
        },
        nullptr, nullptr);
}

}  // namespace iabn_fuzz
