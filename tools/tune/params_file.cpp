#include "params_file.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace iabn_tune {

std::vector<std::pair<std::string, std::string>> ordered(const ParamValues& p) {
    static const std::vector<std::string> order = {
#define IABN_CPU_TUNABLE(name, value) #name,
#define IABN_GPU_TUNABLE(name, value) #name,
#include "tunables.def"
    };
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& k : order) {
        if (auto it = p.find(k); it != p.end()) out.push_back(*it);
    }
    for (const auto& kv : p) {
        if (std::find(order.begin(), order.end(), kv.first) == order.end()) out.push_back(kv);
    }
    return out;
}

std::string to_string(const ParamValues& p) {
    std::string out;
    for (const auto& [k, v] : ordered(p)) out += (out.empty() ? "" : " ") + k + "=" + v;
    return out.empty() ? "(defaults)" : out;
}

namespace {
bool is_data(const std::string& line) {
    // The build reads the lines that do not start with '#' and are not blank.
    return line.find_first_not_of(" \t") != std::string::npos && line[0] != '#';
}

bool is_note(const std::string& line) { return line.rfind("#:", 0) == 0; }

std::string pad(const std::string& s, size_t width) {
    return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string format(const std::string& generator, const std::string& level, const std::string& layout,
                   const std::string& dtype, const ParamValues& values) {
    std::string text = pad(generator, 17) + pad(level, 7) + pad(layout, 5) + dtype + " ";
    for (const auto& [k, v] : ordered(values)) text += " " + k + "=" + v;
    return text;
}
}  // namespace

ParamsFile ParamsFile::read(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    ParamsFile f;
    std::vector<std::string> pending;  // comment lines since the last data line
    bool in_header = true;
    for (std::string line; std::getline(in, line);) {
        if (!is_data(line)) {
            if (in_header && !is_note(line))
                f.header.push_back(line);
            else
                in_header = false, pending.push_back(line);
            continue;
        }
        in_header = false;
        std::stringstream ss(line);
        ParamsLine p;
        p.text = line;
        if (!(ss >> p.generator >> p.level >> p.layout >> p.dtype) || p.level.find('=') != std::string::npos ||
            p.layout.find('=') != std::string::npos || p.dtype.find('=') != std::string::npos)
            throw std::runtime_error(path + ": expected <generator> <level|*> <layout|*> <dtype|*> <name>=<value>..., got: " +
                                     line);
        for (std::string kv; ss >> kv;) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0)
                throw std::runtime_error(path + ": bad value '" + kv + "' in: " + line);
            p.values[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        p.before.swap(pending);
        f.lines.push_back(p);
    }
    f.trailer = pending;
    return f;
}

const ParamsLine* ParamsFile::match(const std::string& generator, const std::string& level, const std::string& layout,
                                    const std::string& dtype) const {
    const ParamsLine* best = nullptr;
    int best_score = -1;
    for (const ParamsLine& p : lines) {
        if (p.generator != generator) continue;
        int score = 0;
        for (const auto& [have, want] : {std::pair{p.level, level}, {p.layout, layout}, {p.dtype, dtype}}) {
            if (have == want)
                score++;
            else if (have != "*")
                score = -1000;
        }
        if (score > best_score) best = &p, best_score = score;
    }
    return best_score >= 0 ? best : nullptr;
}

ParamValues ParamsFile::lookup(const std::string& generator, const std::string& level, const std::string& layout,
                               const std::string& dtype) const {
    const ParamsLine* p = match(generator, level, layout, dtype);
    return p ? p->values : ParamValues{};
}

std::string render(const ParamsFile& old, const std::vector<TunedLine>& tuned) {
    // The old line each tuned line replaces: the same generator, level, layout and dtype ('*' only
    // replaces '*', a dtype only a line of that dtype).
    std::vector<const ParamsLine*> replaces(tuned.size(), nullptr);
    for (size_t i = 0; i < tuned.size(); i++) {
        for (const ParamsLine& p : old.lines) {
            const TunedLine& t = tuned[i];
            if (t.generator == p.generator && t.level == p.level && t.layout == p.layout && t.dtype == p.dtype) {
                replaces[i] = &p;
                break;
            }
        }
    }
    std::vector<bool> placed(tuned.size(), false);
    std::ostringstream out;
    auto write_tuned = [&](size_t i) {
        const TunedLine& t = tuned[i];
        for (const std::string& n : t.notes) out << "#: " << n << "\n";
        out << format(t.generator, t.level, t.layout, t.dtype, t.values) << "\n";
        placed[i] = true;
    };
    for (const std::string& h : old.header) out << h << "\n";
    for (const ParamsLine& p : old.lines) {
        // New lines of this generator go before its first line: the more specific ones first.
        for (size_t i = 0; i < tuned.size(); i++) {
            if (!placed[i] && !replaces[i] && tuned[i].generator == p.generator) {
                out << "\n";
                write_tuned(i);
            }
        }
        const auto replacing = std::find(replaces.begin(), replaces.end(), &p);
        const bool replaced = replacing != replaces.end();
        for (const std::string& b : p.before) {
            if (!(replaced && is_note(b))) out << b << "\n";  // the replaced line's notes go with it
        }
        if (replaced)
            write_tuned(static_cast<size_t>(replacing - replaces.begin()));
        else
            out << p.text << "\n";
    }
    for (const std::string& t : old.trailer) out << t << "\n";
    for (size_t i = 0; i < tuned.size(); i++) {
        if (!placed[i]) write_tuned(i);
    }
    return out.str();
}

}  // namespace iabn_tune
