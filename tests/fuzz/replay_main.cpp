// iabn_fuzz_replay: the fuzz harness (fuzz_api.cpp and the files harness.h lists) without
// libFuzzer, built by any compiler in the normal build: runs each input file given, and every file
// of each directory given (sorted by name), as libFuzzer runs one input, and prints the name of
// each before running it, so that the one a finding aborts on is the last one named. Exits 0 when
// none is a finding; a finding aborts (as in the libFuzzer build). ctest fuzz_regressions and
// fuzz_corpus run it on tests/fuzz/regressions and tests/fuzz/corpus.
//   iabn_fuzz_replay <file or directory>...
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The files named, those of a directory sorted by name.
std::vector<std::filesystem::path> inputs(int argc, char** argv) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; i++) {
        const fs::path arg = argv[i];
        if (!fs::is_directory(arg)) {
            files.push_back(arg);
            continue;
        }
        std::vector<fs::path> in_dir;
        for (const fs::directory_entry& e : fs::directory_iterator(arg)) {
            if (e.is_regular_file()) in_dir.push_back(e.path());
        }
        std::sort(in_dir.begin(), in_dir.end());
        files.insert(files.end(), in_dir.begin(), in_dir.end());
    }
    return files;
}

bool read(const std::filesystem::path& path, std::vector<uint8_t>& bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::filesystem::path> files = inputs(argc, argv);
    if (files.empty()) {
        std::fprintf(stderr, "usage: iabn_fuzz_replay <input file or directory>... (none given, or empty directories)\n");
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    for (const std::filesystem::path& path : files) {
        std::vector<uint8_t> bytes;
        if (!read(path, bytes)) {
            std::fprintf(stderr, "iabn_fuzz_replay: cannot read %s\n", path.c_str());
            return 2;
        }
        std::fprintf(stderr, "iabn_fuzz_replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    }
    std::fprintf(stderr, "iabn_fuzz_replay: %zu inputs, no finding\n", files.size());
    return 0;
}
