// iabn._iabn: the C++ API for Python, without libtorch. A tensor arrives as a tuple
// (data pointer, dtype name, shape, device name), or None for an absent buffer, so the module works
// with any torch version (and any other array library that can hand out pointers); iabn/torch.py
// builds those tuples. The structs of the API arrive as tuples too:
//   state:   (weight, bias, running_mean, running_var, saved_mean, saved_invstd), iabn::ChannelState
//   grads:   (weight_grad, bias_grad), iabn::ParamGrads
//   options: (activation, activation_param, epsilon, momentum, layout, training, use_global_stats,
//             unbiased_running_var, abs_weight, cuda_stream, workspace, workspace_size,
//             check_device_values), iabn::Options ("nchw" or "nhwc"; momentum in iabn's convention,
//             which weighs the running value; workspace a device address or 0)
// A refused argument (iabn::InvalidArgument) is a ValueError, any other iabn::Error a
// RuntimeError; an argument not of its tuple's form a TypeError. The GIL is released while the
// kernels run (without_gil below).
#include <iabn/iabn.h>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <exception>
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
iabn::TensorRef tensor(const py::handle& t) {
    iabn::TensorRef r;
    if (t.is_none()) return r;
    const auto [data, dtype, shape, device] = t.cast<PyTensor>();
    r.data = reinterpret_cast<void*>(data);
    r.dtype = dtype_of(dtype);
    r.shape = shape;
    r.device = device_of(device);
    return r;
}

// A tuple of `n` tensors (each a tensor tuple or None).
py::tuple tensors(const py::handle& t, size_t n, const char* what) {
    const auto items = t.cast<py::tuple>();
    if (items.size() != n) {
        throw iabn::InvalidArgument(std::string(what) + ": expected a tuple of " + std::to_string(n) +
                                    " tensors, got " + std::to_string(items.size()));
    }
    return items;
}

iabn::ChannelState state_of(const py::handle& t) {
    const py::tuple s = tensors(t, 6, "state (weight, bias, running_mean, running_var, saved_mean, saved_invstd)");
    return {tensor(s[0]), tensor(s[1]), tensor(s[2]), tensor(s[3]), tensor(s[4]), tensor(s[5])};
}

iabn::ParamGrads grads_of(const py::handle& t) {
    const py::tuple g = tensors(t, 2, "grads (weight_grad, bias_grad)");
    return {tensor(g[0]), tensor(g[1])};
}

using PyOptions = std::tuple<std::string, double, double, double, std::string, bool, bool, bool, bool, uintptr_t,
                             uintptr_t, size_t, bool>;

iabn::Options options_of(const py::handle& t) {
    const auto [activation, activation_param, epsilon, momentum, layout, training, use_global_stats,
                unbiased_running_var, abs_weight, cuda_stream, workspace, workspace_size, check_device_values] =
        t.cast<PyOptions>();
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
    o.workspace = reinterpret_cast<void*>(workspace);
    o.workspace_size = workspace_size;
    o.check_device_values = check_device_values;
    return o;
}

// An API function called without the GIL. An exception it throws is caught while the GIL is
// released and rethrown once it is held again, so that no exception unwinds through the release
// (the exception holds no Python object, and none is touched without the GIL).
template <typename... Args>
auto without_gil(void (*function)(Args...)) {
    return [function](Args... args) {
        std::exception_ptr error;
        {
            py::gil_scoped_release unlocked;
            try {
                function(args...);
            } catch (...) {
                error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
    };
}

}  // namespace

// The API's structs as arguments: converted from their tuples (above) while pybind11 loads the
// arguments, with the GIL held, so that the functions themselves can be bound as they are and run
// without the GIL (without_gil). A refused value raises before the call.
namespace pybind11::detail {

template <typename T, T (*convert)(const handle&)>
struct iabn_caster {
    PYBIND11_TYPE_CASTER(T, const_name("tuple"));
    bool load(handle src, bool) {
        try {
            value = convert(src);
        } catch (const cast_error&) {
            return false;  // not of the tuple's form: pybind11's TypeError
        }
        return true;
    }
};

template <>
struct type_caster<iabn::TensorRef> : iabn_caster<iabn::TensorRef, tensor> {};
template <>
struct type_caster<iabn::ChannelState> : iabn_caster<iabn::ChannelState, state_of> {};
template <>
struct type_caster<iabn::ParamGrads> : iabn_caster<iabn::ParamGrads, grads_of> {};
template <>
struct type_caster<iabn::Options> : iabn_caster<iabn::Options, options_of> {};

}  // namespace pybind11::detail

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

    // Each function is its C++ namesake (include/iabn/iabn.h), called without the GIL.
    // x becomes z.
    m.def("forward", without_gil(&iabn::forward), py::arg("x"), py::arg("state"), py::arg("options"));
    // dz becomes dx; fills grads.
    m.def("backward", without_gil(&iabn::backward), py::arg("z"), py::arg("dz"), py::arg("state"),
          py::arg("grads"), py::arg("options"));

    // Batch statistics across processes: partials (f64 [2C + 1]) are all-gathered by the caller
    // into gathered (f64 [P, 2C + 1], rank order) between the two halves of each pass.
    m.def("sync_partials_size", &iabn::sync_partials_size, py::arg("channels"),
          "the f64 values one process contributes per synchronized pass: 2 * channels + 1");
    // x is read; partials written.
    m.def("forward_partials", without_gil(&iabn::forward_partials), py::arg("x"), py::arg("partials"),
          py::arg("options"));
    // x becomes z, normalized with the statistics merged from gathered.
    m.def("forward_finish", without_gil(&iabn::forward_finish), py::arg("x"), py::arg("state"), py::arg("gathered"),
          py::arg("options"));
    // z and dz are read; partials and the local grads written.
    m.def("backward_partials", without_gil(&iabn::backward_partials), py::arg("z"), py::arg("dz"), py::arg("state"),
          py::arg("grads"), py::arg("partials"), py::arg("options"));
    // dz becomes dx, with the sums merged from gathered.
    m.def("backward_finish", without_gil(&iabn::backward_finish), py::arg("z"), py::arg("dz"), py::arg("state"),
          py::arg("gathered"), py::arg("options"));

    m.def(
        "activations",
        [] {
            py::tuple names(iabn::kActivationCount);
            for (int i = 0; i < iabn::kActivationCount; ++i) names[i] = iabn::to_string(iabn::kActivations[i]);
            return names;
        },
        "the names of iabn's activations, in the order of iabn::Activation");
    m.def(
        "check_activation", [](const std::string& name) { iabn::parse_activation(name); }, py::arg("name"),
        "raises ValueError unless `name` is an activation iabn can invert (relu cannot be)");
    m.def("workspace_bytes", &iabn::workspace_bytes, py::arg("x"), py::arg("options"),
          "the bytes of device workspace a call on a tensor of x's shape needs at most");
    m.def("version", &iabn::version, "the iabn library's version (the repository's VERSION file)");
    m.def("kernel_target", &iabn::kernel_target, "the CPU target iabn's dispatcher runs on this machine");
    m.def("has_cuda_kernels", &iabn::has_cuda_kernels);
    m.def("set_num_threads", &iabn::set_num_threads, py::arg("n"));
}
