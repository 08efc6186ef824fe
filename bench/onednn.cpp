#include "onednn.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstring>
#include <stdexcept>

namespace bench {

std::string to_string(DnnlFormat f, size_t rank) {
    static const char* plain[] = {"nc", "ncw", "nchw", "ncdhw"};
    static const char* last[] = {"nc", "nwc", "nhwc", "ndhwc"};
    static const char* blocked[] = {"none", "nCw16c", "nChw16c", "nCdhw16c"};
    if (rank < 2 || rank > 5) return "?";
    return f == DnnlFormat::nchw ? plain[rank - 2] : f == DnnlFormat::nhwc ? last[rank - 2] : blocked[rank - 2];
}

const char* to_string(DnnlType t) {
    switch (t) {
        case DnnlType::f32: return "f32";
        case DnnlType::f16: return "f16";
        case DnnlType::bf16: return "bf16";
    }
    return "?";
}

namespace {

using dnnl::memory;
using tag = memory::format_tag;

// oneDNN's name for a layout at a rank (2..5): logical dims are always (N, C, spatial...).
tag format_tag(DnnlFormat f, size_t rank) {
    static const tag plain[] = {tag::nc, tag::ncw, tag::nchw, tag::ncdhw};
    static const tag last[] = {tag::nc, tag::nwc, tag::nhwc, tag::ndhwc};
    static const tag blocked[] = {tag::undef, tag::nCw16c, tag::nChw16c, tag::nCdhw16c};
    if (rank < 2 || rank > 5) throw std::invalid_argument("oneDNN benchmark: rank must be 2..5");
    const tag t = f == DnnlFormat::nchw ? plain[rank - 2] : f == DnnlFormat::nhwc ? last[rank - 2] : blocked[rank - 2];
    if (t == tag::undef) throw std::invalid_argument("oneDNN benchmark: no blocked format at rank 2");
    return t;
}

}  // namespace

struct DnnlBnLeakyRelu::Impl {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    memory::dims dims;
    memory::desc data, plain, channel;
    // x: BN input (kept for the BN backward); y: BN output, activated in place; dz: incoming
    // gradient; dy: the eltwise backward's output (a separate buffer), the BN's diff_dst;
    // dx: BN diff_src.
    memory x, y, dz, dy, dx, x_saved, dz_saved, mean, var, scale, shift, diff_scale, diff_shift;
    dnnl::batch_normalization_forward bn_forward;
    dnnl::eltwise_forward act_forward;
    dnnl::eltwise_backward act_backward;
    dnnl::batch_normalization_backward bn_backward;
    std::string implementations;

    void reorder(memory& from, memory& to) {
        dnnl::reorder(from, to).execute(stream, from, to);
        stream.wait();
    }
    // Reorders convert between data types too: 16 bits to f32 exactly.
    std::vector<float> to_nchw(memory& from) {
        std::vector<float> out(plain.get_size() / sizeof(float));
        memory to(plain, engine, out.data());
        reorder(from, to);
        return out;
    }
    void copy(const memory& from, const memory& to) {
        std::memcpy(to.get_data_handle(), from.get_data_handle(), data.get_size());
    }
};

DnnlBnLeakyRelu::DnnlBnLeakyRelu(const std::vector<int64_t>& dims, DnnlFormat format, float slope, DnnlType type)
    : impl_(std::make_unique<Impl>()) {
    Impl& d = *impl_;
    const tag data_tag = format_tag(format, dims.size());
    const memory::data_type data_type = type == DnnlType::f32    ? memory::data_type::f32
                                        : type == DnnlType::bf16 ? memory::data_type::bf16
                                                                 : memory::data_type::f16;
    const char* creating = "";  // the primitive being created, for the error message
    try {
        using dnnl::algorithm;
        using dnnl::normalization_flags;
        using dnnl::prop_kind;
        const float epsilon = 1e-5f;
        d.dims = memory::dims(dims.begin(), dims.end());
        d.data = memory::desc(d.dims, data_type, data_tag);
        // The plain f32 tensors that load() takes and the checks read back.
        d.plain = memory::desc(d.dims, memory::data_type::f32, format_tag(DnnlFormat::nchw, dims.size()));
        d.channel = memory::desc({dims[1]}, memory::data_type::f32, tag::x);
        for (memory* m : {&d.x, &d.y, &d.dz, &d.dy, &d.dx, &d.x_saved, &d.dz_saved}) *m = memory(d.data, d.engine);
        for (memory* m : {&d.mean, &d.var, &d.scale, &d.shift, &d.diff_scale, &d.diff_shift}) {
            *m = memory(d.channel, d.engine);
        }
        float* scale = static_cast<float*>(d.scale.get_data_handle());
        float* shift = static_cast<float*>(d.shift.get_data_handle());
        for (int64_t c = 0; c < dims[1]; c++) {
            scale[c] = 1.0f;
            shift[c] = 0.0f;
        }

        const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
        creating = "batch_normalization forward";
        const dnnl::batch_normalization_forward::primitive_desc bn_fwd_pd(
            {prop_kind::forward_training, d.data, epsilon, flags}, d.engine);
        d.bn_forward = dnnl::batch_normalization_forward(bn_fwd_pd);
        // relu with a negative slope is leaky_relu; the _use_dst_for_bwd variant lets the backward
        // work from the activated output, as the forward overwrote its input.
        creating = "eltwise forward";
        const dnnl::eltwise_forward::primitive_desc act_fwd_pd(
            {prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, d.data, slope}, d.engine);
        d.act_forward = dnnl::eltwise_forward(act_fwd_pd);
        creating = "eltwise backward";
        const dnnl::eltwise_backward::primitive_desc act_bwd_pd(
            {algorithm::eltwise_relu_use_dst_for_bwd, d.data, d.data, slope}, d.engine, act_fwd_pd);
        d.act_backward = dnnl::eltwise_backward(act_bwd_pd);
        creating = "batch_normalization backward";
        const dnnl::batch_normalization_backward::primitive_desc bn_bwd_pd(
            {prop_kind::backward, d.data, d.data, epsilon, flags}, d.engine, bn_fwd_pd);
        d.bn_backward = dnnl::batch_normalization_backward(bn_bwd_pd);
        d.implementations = std::string("bn ") + bn_fwd_pd.impl_info_str() + " / " + bn_bwd_pd.impl_info_str() +
                            ", eltwise " + act_fwd_pd.impl_info_str() + " / " + act_bwd_pd.impl_info_str();
    } catch (const dnnl::error& e) {
        const std::string what = std::string(creating) + ": " + e.what();
        // "No implementation here" is a fact to report; any other failure is a bug to stop on.
        if (e.status == dnnl_unimplemented) throw DnnlUnsupported(what);
        throw std::runtime_error(std::string("oneDNN (") + to_string(type) + ", " + to_string(format, dims.size()) +
                                 "): " + what);
    }
}

DnnlBnLeakyRelu::~DnnlBnLeakyRelu() = default;

void DnnlBnLeakyRelu::load(const float* x_nchw, const float* dz_nchw) {
    Impl& d = *impl_;
    memory px(d.plain, d.engine, const_cast<float*>(x_nchw)), pdz(d.plain, d.engine, const_cast<float*>(dz_nchw));
    d.reorder(px, d.x_saved);
    d.reorder(pdz, d.dz_saved);
}

void DnnlBnLeakyRelu::restore_forward() { impl_->copy(impl_->x_saved, impl_->x); }
void DnnlBnLeakyRelu::restore_backward() { impl_->copy(impl_->dz_saved, impl_->dz); }

void DnnlBnLeakyRelu::forward() {
    Impl& d = *impl_;
    d.bn_forward.execute(d.stream, {{DNNL_ARG_SRC, d.x},
                                    {DNNL_ARG_DST, d.y},
                                    {DNNL_ARG_MEAN, d.mean},
                                    {DNNL_ARG_VARIANCE, d.var},
                                    {DNNL_ARG_SCALE, d.scale},
                                    {DNNL_ARG_SHIFT, d.shift}});
    d.act_forward.execute(d.stream, {{DNNL_ARG_SRC, d.y}, {DNNL_ARG_DST, d.y}});
    d.stream.wait();
}

void DnnlBnLeakyRelu::backward() {
    Impl& d = *impl_;
    d.act_backward.execute(d.stream, {{DNNL_ARG_DST, d.y}, {DNNL_ARG_DIFF_DST, d.dz}, {DNNL_ARG_DIFF_SRC, d.dy}});
    d.bn_backward.execute(d.stream, {{DNNL_ARG_SRC, d.x},
                                     {DNNL_ARG_MEAN, d.mean},
                                     {DNNL_ARG_VARIANCE, d.var},
                                     {DNNL_ARG_SCALE, d.scale},
                                     {DNNL_ARG_SHIFT, d.shift},
                                     {DNNL_ARG_DIFF_DST, d.dy},
                                     {DNNL_ARG_DIFF_SRC, d.dx},
                                     {DNNL_ARG_DIFF_SCALE, d.diff_scale},
                                     {DNNL_ARG_DIFF_SHIFT, d.diff_shift}});
    d.stream.wait();
}

std::vector<float> DnnlBnLeakyRelu::output_nchw() const { return impl_->to_nchw(impl_->y); }
std::vector<float> DnnlBnLeakyRelu::grad_input_nchw() const { return impl_->to_nchw(impl_->dx); }
std::string DnnlBnLeakyRelu::implementations() const { return impl_->implementations; }

}  // namespace bench
