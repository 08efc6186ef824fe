// iabn-tune's search: coordinate descent over the tunables of a pass's pipelines.
#pragma once

#include "measure.h"

#include <map>
#include <string>
#include <vector>

namespace iabn_tune {

// Results of one pass, for the final table and the params file.
struct PassResult {
    const Pass* pass = nullptr;
    Assignment committed, best;
    bool kept_committed = false;
    std::string why_kept;
    std::vector<double> committed_ms, best_ms, floor_ms;
    std::map<Scheduler, std::vector<std::string>> auto_cells;  // per shape: time or status
    std::map<Scheduler, std::vector<std::string>> auto_notes;  // per shape: why not a time
};

// Coordinate descent from result.committed, within `limit` measured candidates or until
// `deadline` (now_s()); sets result.best and result.committed_ms.
void search(Tuner& t, const Pass& pass, const std::map<std::string, std::vector<std::string>>& tunables,
            PassResult& result, int64_t limit, double deadline, const Options& o);

}  // namespace iabn_tune
