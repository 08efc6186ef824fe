#include "pytorch.h"

#include <csignal>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IABN_BENCH_PYTORCH_WORKER
#error "the build defines IABN_BENCH_PYTORCH_WORKER, the path of pytorch_worker.py"
#endif

namespace bench {

PyTorchWorker::PyTorchWorker(const std::string& python, int threads, size_t flush_bytes) {
    std::signal(SIGPIPE, SIG_IGN);  // a worker that died is reported by its missing answer
    int in[2], out[2];  // the worker's stdin and stdout
    if (pipe(in) != 0 || pipe(out) != 0) {
        why_ = "cannot create pipes";
        return;
    }
    pid_ = fork();
    if (pid_ == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
        const std::string t = std::to_string(threads), f = std::to_string(flush_bytes);
        execl(python.c_str(), python.c_str(), IABN_BENCH_PYTORCH_WORKER, t.c_str(), f.c_str(), nullptr);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid_ < 0) {
        close(in[1]);
        close(out[0]);
        why_ = "cannot fork";
        return;
    }
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
    // The worker's first line: "ready <torch version>"; nothing (it exited) where python or torch
    // is missing.
    std::string hello = request("");
    if (hello.rfind("ready ", 0) != 0) {
        why_ = python + " cannot run " + IABN_BENCH_PYTORCH_WORKER +
               " (is torch installed for it? Debian: apt-get install python3-torch, then --pytorch /usr/bin/python3)";
        stop();
        return;
    }
    version_ = hello.substr(6);
}

PyTorchWorker::~PyTorchWorker() { stop(); }

void PyTorchWorker::stop() {
    if (to_) fclose(to_);
    if (from_) fclose(from_);
    to_ = from_ = nullptr;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);  // closing its stdin ends it
    pid_ = -1;
}

// Sends `line` (none when empty) and returns the worker's one-line answer, "" when it has gone.
std::string PyTorchWorker::request(const std::string& line) {
    if (!to_) return "";
    if (!line.empty()) {
        std::fprintf(to_, "%s\n", line.c_str());
        std::fflush(to_);
    }
    std::string answer;
    for (int c; (c = std::fgetc(from_)) != EOF && c != '\n';) answer += static_cast<char>(c);
    return answer;
}

std::string PyTorchWorker::setup(const std::string& id, const std::string& dtype, const std::string& layout,
                                 const std::vector<int64_t>& nchw) {
    std::string line = "setup " + id + " " + dtype + " " + layout;
    for (int64_t d : nchw) line += " " + std::to_string(d);
    const std::string answer = request(line);
    if (answer == "ok") return "";
    if (answer.rfind("na ", 0) == 0) return answer.substr(3);
    throw std::runtime_error("PyTorch worker: '" + line + "' answered '" + answer + "'");
}

std::pair<double, double> PyTorchWorker::sample(const std::string& id) {
    const std::string answer = request("sample " + id);
    double forward = 0, backward = 0;
    if (std::sscanf(answer.c_str(), "%lf %lf", &forward, &backward) != 2) {
        throw std::runtime_error("PyTorch worker: 'sample " + id + "' answered '" + answer + "'");
    }
    return {forward, backward};
}

void PyTorchWorker::drop(const std::string& id) { request("drop " + id); }

}  // namespace bench
