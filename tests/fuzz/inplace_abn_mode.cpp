// iabn_fuzz_api: mode 3, the life of InPlaceABN objects (harness.h): construct, copy, move,
// forward, backward, destroy; a copy is deep, a call changes no other object, a moved-from
// object's calls throw.
#include "harness.h"

#include <cstring>
#include <exception>

namespace iabn_fuzz {

namespace {

struct Slot {
    std::optional<iabn::InPlaceABN> layer;
    bool moved_from = false;
};

// The layer's per-channel buffers as Bufs (on the heap) and their bytes.
void layer_buffers(const iabn::InPlaceABN& l, Buf (&ch)[kChannelBuffers]) {
    const iabn::ChannelState& s = l.state();
    const iabn::TensorRef refs[kChannelBuffers] = {s.weight,     s.bias,         s.running_mean,       s.running_var,
                                                   s.saved_mean, s.saved_invstd, l.grads().weight_grad, l.grads().bias_grad};
    for (int i = 0; i < kChannelBuffers; i++) {
        ch[i].ref = refs[i];
        ch[i].where = refs[i].data ? Where::heap : Where::null;
        ch[i].bytes = byte_size(refs[i].shape, refs[i].dtype);
    }
}

std::vector<unsigned char> heap_bytes(const Buf& b) {
    if (!b.given() || !b.bytes) return {};
    const auto* p = static_cast<const unsigned char*>(b.ref.data);
    return std::vector<unsigned char>(p, p + *b.bytes);
}

// Every per-channel value of a live, not moved-from layer, through its accessors, as bytes (NaN
// compares equal to itself).
std::vector<unsigned char> layer_values(const iabn::InPlaceABN& l) {
    std::vector<unsigned char> out;
    for (const std::vector<double>& v : {l.weight(), l.bias(), l.running_mean(), l.running_var(), l.saved_mean(),
                                         l.saved_invstd(), l.weight_grad(), l.bias_grad()}) {
        const auto* p = reinterpret_cast<const unsigned char*>(v.data());
        out.insert(out.end(), p, p + v.size() * sizeof(double));
    }
    return out;
}

}  // namespace

void inplace_abn_mode(Choices& in, Rng& rng, int threads) {
    static const int64_t channels_menu[] = {3, 1, 2, 4, 5, 8, 16, 7};
    static const int64_t wild_channels[] = {0, -1, -(int64_t(1) << 40), INT64_MIN};
    const int64_t channels = in.menu(channels_menu, wild_channels, 248);
    const DType dt = call_dtype(in);
    iabn::Options o = options_choice(in);
    if (in.pick(2) == 0) {  // mostly sane options: the interesting part is the object's life
        if (!valid_activation(o.activation)) o.activation = Activation::identity;
        if (!(o.activation_param > 0) || !std::isfinite(o.activation_param)) o.activation_param = 0.3;
        o.epsilon = 1e-5;
        o.momentum = 0.9;
        if (!valid_layout(o.layout)) o.layout = Layout::nchw;
    }
    Slot slots[2];
    try {
        slots[0].layer.emplace(channels, o, dt);
        if (channels < 1) finding("inplace_abn:accepted-channels", "InPlaceABN(" + std::to_string(channels) + ") constructed");
    } catch (const iabn::Error& e) {
        if (channels >= 1) finding("inplace_abn:rejected-channels", std::string("InPlaceABN: ") + e.what());
        return;
    } catch (const std::exception& e) {
        finding("wrong-exception", std::string("InPlaceABN(") + std::to_string(channels) + "): " + e.what());
        return;
    }
    const int ops = 1 + in.pick(6);
    for (int step = 0; step < ops; step++) {
        const size_t op = in.pick(10);
        const size_t si = in.pick(2);
        Slot& s = slots[si];
        Slot& other = slots[1 - si];
        if (!s.layer) continue;
        if (op == 2 || op == 3 || op == 4 || op == 5) {  // copy / move into the other slot
            if (s.moved_from && op != 4 && op != 5) continue;  // copies of moved-from objects: unspecified
            if (op <= 3 && setup().skipped.count("copy")) continue;  // IABN_FUZZ_SKIP=copy
            if (op == 2) {
                other.layer.reset();
                other.layer.emplace(*s.layer);
            } else if (op == 3) {
                if (!other.layer) other.layer.emplace(1);
                *other.layer = *s.layer;
            } else if (op == 4) {
                other.layer.reset();
                other.layer.emplace(std::move(*s.layer));
            } else {
                if (!other.layer) other.layer.emplace(1);
                *other.layer = std::move(*s.layer);
            }
            other.moved_from = s.moved_from;
            if (op >= 4) s.moved_from = true;
            if (op <= 3) {  // a copy is deep: none of its buffers is the original's
                Buf mine[kChannelBuffers], theirs[kChannelBuffers];
                layer_buffers(*s.layer, mine);
                layer_buffers(*other.layer, theirs);
                for (int i = 0; i < kChannelBuffers; i++) {
                    if (mine[i].given() && mine[i].ref.data == theirs[i].ref.data) {
                        finding("inplace_abn:shallow-copy", std::string("a copy of an InPlaceABN (") +
                                                                (op == 2 ? "copy constructor" : "copy assignment") +
                                                                ") shares the original's " + kChName[i] + " buffer");
                        return;  // (destroying either would leave the other dangling)
                    }
                }
            }
            continue;
        }
        if (op == 6) {  // destroy
            s.layer.reset();
            s.moved_from = false;
            continue;
        }
        if (op == 7) {  // set_weight / set_bias, sometimes with the wrong count
            if (s.moved_from) continue;
            const int64_t n = s.layer->channels() + (in.pick(8) == 0 ? 1 : 0);
            std::vector<double> v(static_cast<size_t>(n));
            for (double& x : v) x = rng.signed_uniform(0.5, 1.5);
            const auto before = layer_values(*s.layer);
            try {
                (in.flag() ? s.layer->set_bias(v) : s.layer->set_weight(v));
                if (n != s.layer->channels()) finding("inplace_abn:accepted-set", "set_weight/set_bias with a wrong count");
            } catch (const iabn::Error&) {
                if (n == s.layer->channels()) finding("inplace_abn:rejected-set", "set_weight/set_bias with the right count");
                if (layer_values(*s.layer) != before) finding("error-wrote-buffers", "set_weight/set_bias threw after writing");
            }
            continue;
        }
        // forward (0, 8) / backward (1, 9) on x / z, dz in the arena.
        Gen g{in, rng, 0, {}};
        Call c;
        c.backward = op == 1 || op == 9;
        c.o = s.layer->options();
        c.threads = threads;
        const int64_t C = s.layer->channels();
        // (A moved-from object's call gets an ordinary x: it must throw whatever x is.)
        c.x.ref.dtype = in.pick(8) == 0 && !s.moved_from ? call_dtype(in) : s.layer->dtype();
        std::vector<int64_t> shape = {2 + int64_t(in.pick(6)), C};
        if (in.flag()) shape.push_back(1 + int64_t(in.pick(9)));
        if (valid_layout(c.o.layout) && c.o.layout == Layout::nhwc) std::swap(shape[1], shape.back());
        if (in.pick(16) == 0 && !s.moved_from) shape = shape_choice(in);
        c.x.ref.shape = shape;
        const Layout lay = valid_layout(c.o.layout) ? c.o.layout : Layout::nchw;
        if (!tensor_refused_alone(c.x, lay)) clamp(c.x.ref.shape, c.x.ref.dtype, lay, kArena / 4);
        if (!place(g, c.x, in.pick(8) == 0 && !s.moved_from ? place_choice(in) : Place::fresh,
                   tensor_refused_alone(c.x, lay))) {
            continue;
        }
        if (c.backward) {
            c.dz.ref = c.x.ref;
            if (!place(g, c.dz, Place::fresh, tensor_refused_alone(c.x, lay))) continue;
        }
        // The moved-from object's buffers are not its own: only check that its calls throw.
        if (s.moved_from) {
            std::vector<unsigned char> arena(setup().arena, setup().arena + kArena);
            std::vector<unsigned char> other_state;
            if (other.layer && !other.moved_from) other_state = layer_values(*other.layer);
            try {
                c.backward ? s.layer->backward(c.x.ref, c.dz.ref) : s.layer->forward(c.x.ref);
                finding("inplace_abn:moved-from-call", std::string("a moved-from InPlaceABN's ") +
                                                           (c.backward ? "backward" : "forward") + " did not throw");
            } catch (const iabn::Error&) {
                if (std::memcmp(arena.data(), setup().arena, kArena) != 0) finding("error-wrote-buffers", "moved-from call");
            } catch (const std::exception& e) {
                finding("wrong-exception", std::string("moved-from call: ") + e.what());
            }
            if (other.layer && !other.moved_from && layer_values(*other.layer) != other_state) {
                finding("inplace_abn:moved-from-call", "a moved-from InPlaceABN's call changed the object it was moved into");
            }
            continue;
        }
        layer_buffers(*s.layer, c.ch);
        fill(in, rng, c, false);
        std::vector<unsigned char> heap_before[kChannelBuffers];
        for (int i = 0; i < kChannelBuffers; i++) heap_before[i] = heap_bytes(c.ch[i]);
        std::vector<unsigned char> other_state;
        if (other.layer && !other.moved_from) other_state = layer_values(*other.layer);
        iabn::InPlaceABN& l = *s.layer;
        run(
            c, [&] { c.backward ? l.backward(c.x.ref, c.dz.ref) : l.forward(c.x.ref); }, heap_before,
            [&](int i) { return heap_bytes(c.ch[i]); });
        if (other.layer && !other.moved_from && layer_values(*other.layer) != other_state) {
            finding("inplace_abn:shared-state", "a call on one InPlaceABN changed the state of another (a copy)");
        }
    }
}

}  // namespace iabn_fuzz
