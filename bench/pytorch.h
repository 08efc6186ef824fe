// PyTorch on the CPU, side by side with iabn in iabn-bench's run: a child process running
// pytorch_worker.py (its requests are described there), so that PyTorch's samples interleave
// with the others'. Optional: where the interpreter or torch is missing, available() is false and
// why() says so; the bench's PyTorch columns then stay empty.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace bench {

class PyTorchWorker {
public:
    // Starts `python` on the worker script with the bench's thread count and cache-flush size.
    PyTorchWorker(const std::string& python, int threads, size_t flush_bytes);
    ~PyTorchWorker();
    PyTorchWorker(const PyTorchWorker&) = delete;
    PyTorchWorker& operator=(const PyTorchWorker&) = delete;

    bool available() const { return to_ != nullptr; }
    const std::string& why() const { return why_; }       // why not available
    const std::string& version() const { return version_; }  // torch.__version__

    // A case of this shape: empty when set up, else PyTorch's reason (e.g. no f16 batch norm).
    std::string setup(const std::string& id, const std::string& dtype, const std::string& layout,
                      const std::vector<int64_t>& nchw);
    // One timed forward and backward, in seconds.
    std::pair<double, double> sample(const std::string& id);
    void drop(const std::string& id);

private:
    std::string request(const std::string& line);
    void stop();

    FILE* to_ = nullptr;    // the worker's stdin
    FILE* from_ = nullptr;  // its stdout
    pid_t pid_ = -1;
    std::string why_, version_;
};

}  // namespace bench
