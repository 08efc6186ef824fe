// iabn-tune's report: the final table, and the lines its results give the params file.
#pragma once

#include "params_file.h"
#include "search.h"

#include <vector>

namespace iabn_tune {

// Per pass and shape: the committed time, the best, and the autoschedulers'; then their notes
// and each pipeline's numbers.
void print_results(const Options& o, const std::vector<PassResult>& results);

// A line of o.level for each tuned pipeline whose chosen numbers differ from those it took, with
// notes on where they come from (the machine, the date, the gain, the command).
std::vector<TunedLine> tuned_lines(const Options& o, const std::vector<PassResult>& results);

}  // namespace iabn_tune
