// iabn-bench-gpu: iabn's training forward and backward on a CUDA GPU against the device's own
// copy bandwidth, measured in the same run, and against PyTorch's batch_norm + leaky_relu_ (times
// from bench/gpu/torch_bench.py, same shapes and GPU), one table. bench/gpu/run.sh runs it all.
//
//   iabn-bench-gpu [--repeats 20] [--torch torch.txt]
//   iabn-bench-gpu --device     prints the GPU it would run on and exits; or why there is none, exit 1
//
// Floors, from a device-to-device copy of the tensor (which reads and writes it: 2 passes):
// forward (training) 3 passes = 1.5 copies, backward (training) 5 passes = 2.5 copies
// (docs/DESIGN.md, "Performance model": on a GPU both layouts run the two-pass kernels, whose
// floors are these).
#include "cuda_driver.h"
#include "timing.h"  // bench::median

#include <iabn/iabn.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using iabn_test::CudaDevice;

struct Shape {
    std::string name;
    std::vector<int64_t> nchw;
};

const std::vector<Shape> kShapes = {
    {"resnet50 conv1", {32, 64, 112, 112}}, {"resnet50 stage1", {32, 256, 56, 56}},
    {"resnet50 stage2", {32, 512, 28, 28}}, {"resnet50 stage3", {32, 1024, 14, 14}},
    {"resnet50 stage4", {32, 2048, 7, 7}},
};

std::string dims(const std::vector<int64_t>& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) out += (i ? "x" : "") + std::to_string(s[i]);
    return out;
}

// torch_bench.py's lines: "<dims> <layout> <pass> <ms>".
std::map<std::string, double> read_torch(const std::string& path) {
    std::map<std::string, double> out;
    std::ifstream in(path);
    std::string d, layout, pass;
    double ms = 0;
    for (std::string line; std::getline(in, line);) {
        std::istringstream ss(line);
        if (ss >> d >> layout >> pass >> ms) out[d + " " + layout + " " + pass] = ms;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) try {
    int repeats = 20;
    std::string torch_file;
    bool device_only = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--repeats" && i + 1 < argc) repeats = std::max(3, std::stoi(argv[++i]));
        else if (a == "--torch" && i + 1 < argc) torch_file = argv[++i];
        else if (a == "--device") device_only = true;
        else {
            std::fprintf(stderr, "usage: iabn-bench-gpu [--repeats 20] [--torch torch.txt] | --device\n");
            return a == "--help" ? 0 : 2;
        }
    }
    CudaDevice* gpu = CudaDevice::get();
    if (!gpu) {
        std::fprintf(stderr, "iabn-bench-gpu: %s\n", CudaDevice::why().c_str());
        return 1;
    }
    if (!iabn::has_cuda_kernels()) {
        std::fprintf(stderr, "iabn-bench-gpu: this build of iabn has no CUDA kernels (IABN_CUDA=OFF)\n");
        return 1;
    }
    if (device_only) {
        std::printf("%s\n", gpu->name().c_str());
        return 0;
    }
    const std::map<std::string, double> torch = torch_file.empty() ? std::map<std::string, double>() : read_torch(torch_file);
    std::printf("iabn-bench-gpu  %s  f32, leaky_relu(0.01), medians of %d runs; floor from a device-to-device copy "
                "in the same run; x = PyTorch time / iabn time%s\n\n",
                gpu->name().c_str(), repeats, torch.empty() ? " (no PyTorch times given)" : "");
    std::printf("%-16s %-18s %-5s %-10s %8s %8s %6s %7s %9s %6s\n", "shape", "", "lay", "pass", "iabn ms", "floor ms",
                "ratio", "GB/s", "torch ms", "x");

    void* stream = gpu->create_queue();
    void *start = gpu->create_event(), *end = gpu->create_event();
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (const Shape& sh : kShapes) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            std::vector<int64_t> shape = sh.nchw;
            if (layout == iabn::Layout::nhwc) shape = {sh.nchw[0], sh.nchw[2], sh.nchw[3], sh.nchw[1]};
            const int64_t C = sh.nchw[1];
            int64_t n = 1;
            for (int64_t d : shape) n *= d;
            const size_t bytes = static_cast<size_t>(n) * sizeof(float);
            std::vector<float> host(static_cast<size_t>(n));
            for (float& v : host) v = 1.5f * normal(rng) + 0.3f;
            void *x0 = gpu->alloc(bytes), *x = gpu->alloc(bytes), *dz0 = gpu->alloc(bytes), *dz = gpu->alloc(bytes);
            gpu->upload(x0, host.data(), bytes);
            for (float& v : host) v = normal(rng);
            gpu->upload(dz0, host.data(), bytes);
            std::vector<float> ones(static_cast<size_t>(C), 1.0f), zeros(static_cast<size_t>(C), 0.0f);
            std::vector<void*> channel;
            auto channel_buffer = [&](const std::vector<float>& init) {
                void* p = gpu->alloc(C * sizeof(float));
                gpu->upload(p, init.data(), C * sizeof(float));
                channel.push_back(p);
                iabn::TensorRef t{p, iabn::DType::f32, {C}, iabn::Device::cuda};
                return t;
            };
            iabn::ChannelState st{channel_buffer(ones),  channel_buffer(zeros), channel_buffer(zeros),
                                  channel_buffer(ones),  channel_buffer(zeros), channel_buffer(zeros)};
            iabn::ParamGrads grads{channel_buffer(zeros), channel_buffer(zeros)};
            iabn::Options o;
            o.activation = iabn::Activation::leaky_relu;
            o.activation_param = 0.01;
            o.layout = layout;
            o.cuda_stream = stream;
            const iabn::TensorRef tx{x, iabn::DType::f32, shape, iabn::Device::cuda};
            const iabn::TensorRef tdz{dz, iabn::DType::f32, shape, iabn::Device::cuda};

            std::vector<double> fwd, bwd, copy;
            for (int r = 0; r < repeats + 1; r++) {
                gpu->copy_async(x, x0, bytes, stream);
                gpu->record(start, stream);
                iabn::forward(tx, st, o);
                gpu->record(end, stream);
                const double t_fwd = gpu->elapsed_ms(start, end);
                gpu->copy_async(dz, dz0, bytes, stream);
                gpu->record(start, stream);
                iabn::backward(tx, tdz, st, grads, o);
                gpu->record(end, stream);
                const double t_bwd = gpu->elapsed_ms(start, end);
                gpu->record(start, stream);
                gpu->copy_async(dz, dz0, bytes, stream);
                gpu->record(end, stream);
                const double t_copy = gpu->elapsed_ms(start, end);
                if (r == 0) continue;  // warm-up (module load, allocation cache)
                fwd.push_back(t_fwd);
                bwd.push_back(t_bwd);
                copy.push_back(t_copy);
            }
            const double floor_copy = bench::median(copy);
            const std::string key = dims(shape) + " " + iabn::to_string(layout);
            for (auto [pass, t, copies] : {std::make_tuple("fwd-train", bench::median(fwd), 1.5),
                                           std::make_tuple("bwd-train", bench::median(bwd), 2.5)}) {
                const double floor_ms = floor_copy * copies;
                const double gbs = 2 * copies * bytes / (t * 1e-3) / 1e9;
                auto it = torch.find(key + " " + pass);
                char torch_ms[32] = "-", speedup[32] = "-";
                if (it != torch.end()) {
                    std::snprintf(torch_ms, sizeof torch_ms, "%.3f", it->second);
                    std::snprintf(speedup, sizeof speedup, "%.2f", it->second / t);
                }
                std::printf("%-16s %-18s %-5s %-10s %8.3f %8.3f %6.2f %7.0f %9s %6s\n", sh.name.c_str(),
                            dims(shape).c_str(), iabn::to_string(layout), pass, t, floor_ms, t / floor_ms, gbs,
                            torch_ms, speedup);
            }
            for (void* p : channel) gpu->free(p);
            for (void* p : {x0, x, dz0, dz}) gpu->free(p);
        }
    }
    gpu->destroy_event(start);
    gpu->destroy_event(end);
    gpu->destroy_queue(stream);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench-gpu: %s\n", e.what());
    return 1;
}
