// schedules/<arch>.params: read with cmake/IabnKernels.cmake's rule, rewritten by the tuner.
//   <generator> <layout|*> <dtype|*> <name>=<value>...   first matching line wins; '#' comments.
#pragma once

#include "harness.h"

#include <string>
#include <vector>

namespace iabn_tune {

struct ParamsLine {
    std::string generator, layout, dtype;
    ParamValues values;
    std::string text;  // as read
};

struct ParamsFile {
    std::vector<std::string> header;  // the comment lines before the first data line
    std::vector<ParamsLine> lines;    // data lines, in order

    static ParamsFile read(const std::string& path);
    // The values of the first line matching, as the build picks them (empty if none matches).
    ParamValues lookup(const std::string& generator, const std::string& layout, const std::string& dtype) const;
};

struct TunedLine {
    std::string generator, layout;
    ParamValues values;
    std::string comment;  // one line, written above it as "#: ..."
};

// The new file: `old`'s header with its provenance line replaced by `provenance`, then one line
// per (generator, layout) in `lines` (dtype *), then `old`'s lines for generators not in `lines`.
std::string render(const ParamsFile& old, const std::vector<std::string>& provenance,
                   const std::vector<TunedLine>& lines);

}  // namespace iabn_tune
