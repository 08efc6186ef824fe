// A schedule params file (schedules/<arch>.params, or a user's own): read with the build's rule
// (cmake/IabnKernels.cmake), rewritten by the tuner line by line.
//   <generator> <level|*> <layout|*> <dtype|*> <name>=<value>...
// A (generator, level, layout, dtype) takes the matching line that names the most of level,
// layout and dtype ('*' matches anything); among equals, the first. "#:" lines above a data line
// are its notes (where its numbers come from); other comments stay where they are.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace iabn_tune {

// GeneratorParam name -> value, only those set explicitly (an absent name keeps the generator's
// default, so the tuner never needs to know the defaults).
using ParamValues = std::map<std::string, std::string>;

// The tunables in the order of schedules/tunables.def (CPU, then GPU), then any other name.
std::vector<std::pair<std::string, std::string>> ordered(const ParamValues& p);
std::string to_string(const ParamValues& p);

struct ParamsLine {
    std::string generator, level, layout, dtype;
    ParamValues values;
    std::vector<std::string> before;  // the comment and blank lines above it (after the header), as read
    std::string text;                 // as read
};

struct ParamsFile {
    std::vector<std::string> header;  // the lines before the first "#:" or data line
    std::vector<ParamsLine> lines;    // data lines, in order
    std::vector<std::string> trailer;  // comment lines after the last data line

    static ParamsFile read(const std::string& path);
    // The line the build takes for these (nullptr if none matches).
    const ParamsLine* match(const std::string& generator, const std::string& level, const std::string& layout,
                            const std::string& dtype) const;
    // Its values (empty if none matches: the generator's defaults).
    ParamValues lookup(const std::string& generator, const std::string& level, const std::string& layout,
                       const std::string& dtype) const;
};

// A line the tuner writes: (generator, level, layout, dtype), dtype "*" (every dtype) or the one
// dtype it is for.
struct TunedLine {
    std::string generator, level, layout, dtype = "*";
    ParamValues values;
    std::vector<std::string> notes;  // written above it as "#: ..."
};

// `old` with each tuned line in place of the line of the same (generator, level, layout, dtype),
// whose notes it replaces, or, where there is none, inserted before the first line of its
// generator (at the end if there is none). Every other line stays as it was, notes included.
std::string render(const ParamsFile& old, const std::vector<TunedLine>& tuned);

}  // namespace iabn_tune
