// iabn._iabn: the C++ API for Python, without libtorch. A tensor arrives as a tuple
// (data pointer, dtype name, shape, device name), so the module works with any torch version (and
// any other array library that can hand out pointers); iabn/torch.py builds those tuples.
// A refused argument (iabn::InvalidArgument) is a ValueError, any other iabn::Error a
// RuntimeError. The GIL is released while the kernels run.
#include <iabn/iabn.h>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

iabn::DType dtype_of(const std::string& name) {
    if (name == "f32") return iabn::DType::f32;
    if (name == "f64") return iabn::DType::f64;
    if (name == "f16") return iabn::DType::f16;
    if (name == "bf16") return iabn::DType::bf16;
    throw iabn::InvalidArgument("dtype: expected f32, f64, f16 or bf16, got '" + name + "'");
}

iabn::Device device_of(const std::string& name) {
    if (name == "cpu") return iabn::Device::cpu;
    if (name == "cuda") return iabn::Device::cuda;
    throw iabn::InvalidArgument("device: expected cpu or cuda, got '" + name + "'");
}

using PyTensor = std::tuple<uintptr_t, std::string, std::vector<int64_t>, std::string>;

// None is an absent buffer (data == nullptr).
iabn::TensorRef tensor(const py::object& t) {
    iabn::TensorRef r;
    if (t.is_none()) return r;
    const auto [data, dtype, shape, device] = t.cast<PyTensor>();
    r.data = reinterpret_cast<void*>(data);
    r.dtype = dtype_of(dtype);
    r.shape = shape;
    r.device = device_of(device);
    return r;
}

iabn::Options options(const std::string& activation, double activation_param, double epsilon, double momentum,
                      const std::string& layout, bool training, bool use_global_stats, bool unbiased_running_var,
                      bool abs_weight, uintptr_t cuda_stream) {
    iabn::Options o;
    o.activation = iabn::parse_activation(activation);
    o.activation_param = activation_param;
    o.epsilon = epsilon;
    o.momentum = momentum;
    if (layout == "nchw") {
        o.layout = iabn::Layout::nchw;
    } else if (layout == "nhwc") {
        o.layout = iabn::Layout::nhwc;
    } else {
        throw iabn::InvalidArgument("layout: expected nchw or nhwc, got '" + layout + "'");
    }
    o.training = training;
    o.use_global_stats = use_global_stats;
    o.unbiased_running_var = unbiased_running_var;
    o.abs_weight = abs_weight;
    o.cuda_stream = reinterpret_cast<void*>(cuda_stream);
    return o;
}

}  // namespace

PYBIND11_MODULE(_iabn, m) {
    m.doc() = "iabn's C++ API (In-Place Activated BatchNorm kernels) over raw tensors; see iabn.torch";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const iabn::InvalidArgument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const iabn::Error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });

    // forward(x, weight, bias, running_mean, running_var, saved_mean, saved_invstd, <options>):
    // x becomes z; see include/iabn/iabn.h.
    m.def(
        "forward",
        [](const py::object& x, const py::object& weight, const py::object& bias, const py::object& running_mean,
           const py::object& running_var, const py::object& saved_mean, const py::object& saved_invstd,
           const std::string& activation, double activation_param, double epsilon, double momentum,
           const std::string& layout, bool training, bool use_global_stats, bool unbiased_running_var,
           bool abs_weight, uintptr_t cuda_stream) {
            const iabn::TensorRef tx = tensor(x);
            const iabn::ChannelState st{tensor(weight),      tensor(bias),       tensor(running_mean),
                                        tensor(running_var), tensor(saved_mean), tensor(saved_invstd)};
            const iabn::Options o = options(activation, activation_param, epsilon, momentum, layout, training,
                                            use_global_stats, unbiased_running_var, abs_weight, cuda_stream);
            py::gil_scoped_release unlocked;
            iabn::forward(tx, st, o);
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("saved_mean"), py::arg("saved_invstd"), py::arg("activation"), py::arg("activation_param"),
        py::arg("epsilon"), py::arg("momentum"), py::arg("layout"), py::arg("training"), py::arg("use_global_stats"),
        py::arg("unbiased_running_var"), py::arg("abs_weight"), py::arg("cuda_stream"));

    // backward(z, dz, weight, bias, saved_invstd, running_var, weight_grad, bias_grad, <options>):
    // dz becomes dx.
    m.def(
        "backward",
        [](const py::object& z, const py::object& dz, const py::object& weight, const py::object& bias,
           const py::object& saved_invstd, const py::object& running_var, const py::object& weight_grad,
           const py::object& bias_grad, const std::string& activation, double activation_param, double epsilon,
           const std::string& layout, bool training, bool use_global_stats, bool abs_weight, uintptr_t cuda_stream) {
            const iabn::TensorRef tz = tensor(z), tdz = tensor(dz);
            iabn::ChannelState st;
            st.weight = tensor(weight);
            st.bias = tensor(bias);
            st.saved_invstd = tensor(saved_invstd);
            st.running_var = tensor(running_var);
            const iabn::ParamGrads grads{tensor(weight_grad), tensor(bias_grad)};
            const iabn::Options o = options(activation, activation_param, epsilon, 0.0, layout, training,
                                            use_global_stats, false, abs_weight, cuda_stream);
            py::gil_scoped_release unlocked;
            iabn::backward(tz, tdz, st, grads, o);
        },
        py::arg("z"), py::arg("dz"), py::arg("weight"), py::arg("bias"), py::arg("saved_invstd"), py::arg("running_var"),
        py::arg("weight_grad"), py::arg("bias_grad"), py::arg("activation"), py::arg("activation_param"),
        py::arg("epsilon"), py::arg("layout"), py::arg("training"), py::arg("use_global_stats"), py::arg("abs_weight"),
        py::arg("cuda_stream"));

    m.def(
        "check_activation", [](const std::string& name) { iabn::parse_activation(name); }, py::arg("name"),
        "raises ValueError unless `name` is an activation iabn can invert (relu cannot be)");
    m.def("kernel_target", &iabn::kernel_target, "the CPU target iabn's dispatcher runs on this machine");
    m.def("has_cuda_kernels", &iabn::has_cuda_kernels);
    m.def("set_num_threads", &iabn::set_num_threads, py::arg("n"));
}
