// The synchronized passes (iabn.h, "Batch statistics across processes") with the processes
// emulated in one: each "process" runs *_partials on its slice of the batch, the test
// concatenates the partials in rank order (what an all-gather does), and each runs *_finish.
// Every output must be that of the float64 reference over the concatenated batch: z, the saved
// and running statistics, dx; the parameter gradients must be each process's own share (the
// reference over its slice, with the global statistics). Real transports run the same calls in
// tests/mpi (MPI) and python/tests/test_sync.py (torch.distributed).
#include "case_runner.h"
#include "compare.h"
#include "device_mirror.h"

#include <gtest/gtest.h>

#include <cstring>

namespace iabn_test {
namespace {

struct SyncCase {
    Case c;                       // c.shape: the concatenated batch
    std::vector<int64_t> batches; // each process's share of dim 0, in rank order
};

std::string sync_name(const ::testing::TestParamInfo<SyncCase>& info) {
    std::string n = info.param.c.name() + "_batches";
    for (int64_t b : info.param.batches) n += "_" + std::to_string(b);
    return n;
}

std::vector<int64_t> with_batch(std::vector<int64_t> shape, int64_t n) {
    shape[0] = n;
    return shape;
}

// Elements [first, first + count) of v.
std::vector<double> slice(const std::vector<double>& v, int64_t first, int64_t count) {
    return {v.begin() + first, v.begin() + first + count};
}

// One emulated process: its slice of the batch and its own per-channel buffers.
struct Process {
    Buffer x;  // x, then z (forward); z (backward)
    Buffer dz;
    ChannelBuffers cb;
    Buffer partials;
    int64_t first = 0;  // of its elements in the concatenated tensor
};

// The gathered rows, in rank order.
Buffer gather(std::vector<Process>& ps, int64_t width) {
    Buffer all(iabn::DType::f64, {static_cast<int64_t>(ps.size()), width});
    for (size_t p = 0; p < ps.size(); p++) {
        std::memcpy(all.raw() + p * width * sizeof(double), ps[p].partials.raw(), width * sizeof(double));
    }
    return all;
}

class Sync : public ::testing::TestWithParam<SyncCase> {};

TEST_P(Sync, ForwardAndBackwardEqualTheConcatenatedBatch) {
    const Case& c = GetParam().c;
    const std::vector<int64_t>& batches = GetParam().batches;
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    const int64_t C = in.channels, width = iabn::sync_partials_size(C);
    const int64_t row = numel(c.shape) / c.shape[0];  // elements of one sample
    const ref::ForwardResult r = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);

    std::vector<Process> ps;
    int64_t first = 0;
    for (int64_t n : batches) {
        Process p{Buffer(c.dtype, with_batch(c.shape, n)), Buffer(c.dtype, with_batch(c.shape, n)),
                  ChannelBuffers::filled(cd, in), Buffer(iabn::DType::f64, {width}), first};
        p.x.set(slice(in.x, first, n * row));
        p.partials.poison();
        ps.push_back(std::move(p));
        first += n * row;
    }

    // Forward: partials, the all-gather, finish.
    for (Process& p : ps) {
        DeviceMirror on(c.device, c.queue);
        ASSERT_NO_THROW(iabn::forward_partials(p.x.ref(), p.partials.ref(), o));
        on.download();
    }
    Buffer gathered = gather(ps, width);
    for (Process& p : ps) {
        DeviceMirror on(c.device, c.queue);
        ASSERT_NO_THROW(iabn::forward_finish(p.x.ref(), p.cb.state(), gathered.ref(), o));
        on.download();
    }
    const ForwardTolerances ftol{tolerance(c.dtype), channel_tolerance(c.dtype), channel_tolerance(c.dtype)};
    std::vector<double> z_all;
    for (size_t i = 0; i < ps.size(); i++) {
        Process& p = ps[i];
        ForwardOutputs got;
        got.z = p.x.get();
        z_all.insert(z_all.end(), got.z.begin(), got.z.end());
        got.saved_mean = p.cb.saved_mean.get();
        got.saved_invstd = p.cb.saved_invstd.get();
        got.running_mean = p.cb.running_mean.get();
        got.running_var = p.cb.running_var.get();
        ref::ForwardResult ri = r;  // this process's z; the statistics of the whole batch
        ri.z = slice(r.z, p.first, p.x.size());
        for (const Mismatch& m : compare_forward(got, ri, true, ftol)) {
            ADD_FAILURE() << "process " << i << " forward: " << m.what << ": error " << m.error << " > tolerance "
                          << m.tolerance;
        }
        // The same rows merged in the same order: the same bits on every process.
        for (Buffer ChannelBuffers::*m : {&ChannelBuffers::saved_mean, &ChannelBuffers::saved_invstd,
                                          &ChannelBuffers::running_mean, &ChannelBuffers::running_var}) {
            EXPECT_TRUE((p.cb.*m).same_bytes((ps[0].cb.*m).snapshot()))
                << "process " << i << " has other statistics than process 0";
        }
    }

    // f64: the single-process forward over the concatenated batch, to 1e-12.
    if (c.dtype == iabn::DType::f64 && c.device == iabn::Device::cpu) {
        Buffer whole(c.dtype, c.shape);
        whole.set(in.x);
        ChannelBuffers cw = ChannelBuffers::filled(cd, in);
        iabn::forward(whole.ref(), cw.state(), o);
        EXPECT_LE(rel_err(z_all, whole.get()), 1e-12) << "z against one process's forward of the whole batch";
        EXPECT_LE(rel_err(ps[0].cb.saved_invstd.get(), cw.saved_invstd.get()), 1e-12);
        EXPECT_LE(rel_err(ps[0].cb.running_var.get(), cw.running_var.get()), 1e-12);
    }

    // Backward, on the reference's z (stored) and saved_invstd, with fresh dz.
    Buffer z_whole(c.dtype, c.shape), dz_whole(c.dtype, c.shape);
    const std::vector<double> z_stored = z_whole.set(r.z);
    const std::vector<double> dz_stored = dz_whole.set(make_dz(c, in, rng));
    Buffer si(cd, {C});
    const std::vector<double> si_stored = si.set(r.saved_invstd);
    for (Process& p : ps) {
        p.x.set(slice(z_stored, p.first, p.x.size()));
        p.dz.set(slice(dz_stored, p.first, p.dz.size()));
        p.cb.saved_invstd.set(si_stored);
        p.cb.weight_grad.poison();
        p.cb.bias_grad.poison();
        p.partials.poison();
    }
    for (Process& p : ps) {
        DeviceMirror on(c.device, c.queue);
        ASSERT_NO_THROW(iabn::backward_partials(p.x.ref(), p.dz.ref(), p.cb.state(), p.cb.grads(), p.partials.ref(), o));
        on.download();
    }
    gathered = gather(ps, width);
    for (Process& p : ps) {
        DeviceMirror on(c.device, c.queue);
        ASSERT_NO_THROW(iabn::backward_finish(p.x.ref(), p.dz.ref(), p.cb.state(), gathered.ref(), o));
        on.download();
    }
    const ref::BackwardResult rb =
        ref::backward(z_stored, dz_stored, c.shape, in.weight, in.bias, si_stored, {}, o);
    const BackwardTolerances btol(tolerance(c.dtype), channel_tolerance(c.dtype));
    std::vector<double> dx_all;
    for (size_t i = 0; i < ps.size(); i++) {
        Process& p = ps[i];
        const std::vector<double> dx = p.dz.get();
        dx_all.insert(dx_all.end(), dx.begin(), dx.end());
        // This process's parameter gradients: the reference over its slice alone, with the
        // global statistics (its dx is not the synchronized one: left out here).
        const ref::BackwardResult local = ref::backward(slice(z_stored, p.first, p.x.size()),
                                                        slice(dz_stored, p.first, p.dz.size()), p.x.shape(),
                                                        in.weight, in.bias, si_stored, {}, o);
        BackwardOutputs got;
        got.dx = local.dx;
        got.grads = true;
        got.weight_grad = p.cb.weight_grad.get();
        got.bias_grad = p.cb.bias_grad.get();
        for (const Mismatch& m : compare_backward(got, local, btol)) {
            ADD_FAILURE() << "process " << i << " local parameter gradients: " << m.what << ": error " << m.error
                          << " > tolerance " << m.tolerance;
        }
    }
    BackwardOutputs all;
    all.dx = dx_all;
    BackwardFloors floors;
    floors.skip = &rb.saturated;
    for (const Mismatch& m : compare_backward(all, rb, btol, floors)) {
        ADD_FAILURE() << "backward: " << m.what << ": error " << m.error << " > tolerance " << m.tolerance;
    }
}

// Bad input to the synchronized calls: an iabn::InvalidArgument naming the argument, and
// nothing written (every buffer keeps its bytes).
class SyncBadInput : public ::testing::Test {
protected:
    SyncBadInput() : x(iabn::DType::f32, {1, 3}), dz(iabn::DType::f32, {1, 3}), cb(iabn::DType::f32, 3, true, true, true),
                     partials(iabn::DType::f64, {7}), gathered(iabn::DType::f64, {2, 7}) {
        Rng rng;
        for (Buffer* b : {&x, &dz, &cb.weight, &cb.bias, &cb.running_mean, &cb.running_var, &cb.saved_mean,
                          &cb.saved_invstd, &cb.weight_grad, &cb.bias_grad, &partials}) {
            for (int64_t i = 0; i < b->size(); i++) b->put(i, rng.uniform(0.5, 1.5));
        }
        // Two processes: this one (1 element per channel) and one with 3.
        for (int64_t i = 0; i < 7; i++) {
            gathered.put(i, i == 0 ? 1.0 : rng.uniform(0.5, 1.5));
            gathered.put(7 + i, i == 0 ? 3.0 : rng.uniform(0.5, 1.5));
        }
    }

    // Runs `call`, expects an InvalidArgument whose message contains `needle`, and that no buffer changed.
    template <typename F>
    void refused(F call, const std::string& needle) {
        std::vector<std::pair<Buffer*, Bytes>> before;
        for (Buffer* b : {&x, &dz, &cb.weight, &cb.bias, &cb.running_mean, &cb.running_var, &cb.saved_mean,
                          &cb.saved_invstd, &cb.weight_grad, &cb.bias_grad, &partials, &gathered}) {
            before.emplace_back(b, b->snapshot());
        }
        try {
            call();
            ADD_FAILURE() << "accepted; expected an error containing '" << needle << "'";
        } catch (const iabn::InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
        for (const auto& [b, bytes] : before) EXPECT_TRUE(b->same_bytes(bytes)) << "a refused call wrote a buffer";
    }

    Buffer x, dz;
    ChannelBuffers cb;
    Buffer partials, gathered;
    iabn::Options o;
};

TEST_F(SyncBadInput, GlobalStatisticsNeedNoExchange) {
    o.use_global_stats = true;
    refused([&] { iabn::forward_partials(x.ref(), partials.ref(), o); }, "batch statistics");
    o.use_global_stats = false;
    o.training = false;
    refused([&] { iabn::forward_finish(x.ref(), cb.state(), gathered.ref(), o); }, "batch statistics");
    refused([&] { iabn::backward_partials(x.ref(), dz.ref(), cb.state(), cb.grads(), partials.ref(), o); },
            "batch statistics");
    refused([&] { iabn::backward_finish(x.ref(), dz.ref(), cb.state(), gathered.ref(), o); }, "batch statistics");
}

TEST_F(SyncBadInput, PartialsOfTheWrongShapeOrDtype) {
    iabn::TensorRef short_partials = partials.ref();
    short_partials.shape = {6};
    refused([&] { iabn::forward_partials(x.ref(), short_partials, o); }, "partials: expected shape [7]");
    Buffer f32_partials(iabn::DType::f32, {7});
    refused([&] { iabn::forward_partials(x.ref(), f32_partials.ref(), o); }, "partials.dtype: expected f64");
    refused([&] { iabn::forward_partials(x.ref(), iabn::TensorRef{nullptr, iabn::DType::f64, {7}}, o); },
            "partials: expected a data pointer");
    iabn::TensorRef flat = gathered.ref();
    flat.shape = {14};
    refused([&] { iabn::forward_finish(x.ref(), cb.state(), flat, o); }, "gathered: expected shape [P, 7]");
    // partials written over the tensor they are computed from
    Buffer big(iabn::DType::f32, {8, 3});
    refused([&] { iabn::forward_partials(big.ref(), iabn::TensorRef{big.data(), iabn::DType::f64, {7}}, o); },
            "overlaps");
}

TEST_F(SyncBadInput, GatheredCountsAreChecked) {
    gathered.put(7, 0.0);  // the other process: no elements
    refused([&] { iabn::forward_finish(x.ref(), cb.state(), gathered.ref(), o); }, "0 in row 1");
    gathered.put(7, 2.5);  // not an integer
    refused([&] { iabn::backward_finish(x.ref(), dz.ref(), cb.state(), gathered.ref(), o); }, "2.5 in row 1");
    gathered.put(7, 3.0);
    gathered.put(0, 5.0);  // no row is this process's (1 element per channel)
    refused([&] { iabn::forward_finish(x.ref(), cb.state(), gathered.ref(), o); }, "a row with this tensor's count");
    // This process alone, with 1 element per channel: no variance.
    Buffer alone(iabn::DType::f64, {1, 7});
    alone.put(0, 1.0);
    for (int64_t i = 1; i < 7; i++) alone.put(i, 0.5);
    refused([&] { iabn::forward_finish(x.ref(), cb.state(), alone.ref(), o); }, "at least 2 elements per channel");
}

std::vector<SyncCase> sync_cases(iabn::Device device) {
    std::vector<SyncCase> cases;
    int variant = 0;
    for (iabn::DType dt : {iabn::DType::f64, iabn::DType::f32, iabn::DType::f16, iabn::DType::bf16}) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (iabn::Activation act : iabn::kActivations) {
                SyncCase s;
                s.c.dtype = dt;
                s.c.layout = layout;
                s.c.shape = layout == iabn::Layout::nchw ? std::vector<int64_t>{12, 5, 3, 4}
                                                         : std::vector<int64_t>{12, 3, 4, 5};
                s.c.act = act;
                s.c.param = typical_param(act);
                s.c.unbiased = variant % 2 == 0;
                s.c.abs_weight = variant % 3 == 1;
                s.c.device = device;
                s.batches = {1, 4, 7};
                cases.push_back(s);
                variant++;
            }
        }
        // One process with a single element per channel (rank 2: [1, C]), one with one process.
        SyncCase single;
        single.c.dtype = dt;
        single.c.shape = {12, 6};
        single.c.act = iabn::Activation::leaky_relu;
        single.c.param = 0.1;
        single.c.device = device;
        single.batches = {1, 4, 7};
        cases.push_back(single);
        SyncCase alone = single;
        alone.batches = {12};
        cases.push_back(alone);
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Cpu, Sync, ::testing::ValuesIn(sync_cases(iabn::Device::cpu)), sync_name);
INSTANTIATE_TEST_SUITE_P(OpenCL, Sync, ::testing::ValuesIn(sync_cases(iabn::Device::opencl)), sync_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Sync, ::testing::ValuesIn(sync_cases(iabn::Device::cuda)), sync_name);

}  // namespace
}  // namespace iabn_test
