#include "params_file.h"

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace iabn_tune {

ParamsFile ParamsFile::read(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    ParamsFile f;
    for (std::string line; std::getline(in, line);) {
        // cmake/IabnKernels.cmake reads lines that start with [a-z_] and ignores the rest.
        if (line.empty() || !(std::islower(static_cast<unsigned char>(line[0])) || line[0] == '_')) {
            // The header: the comment lines before the first data line, less the tuner's
            // notes on its lines ("#: ...", rewritten with them).
            if (f.lines.empty() && !line.empty() && line[0] == '#' && line.rfind("#:", 0) != 0)
                f.header.push_back(line);
            continue;
        }
        std::stringstream ss(line);
        ParamsLine p;
        p.text = line;
        if (!(ss >> p.generator >> p.layout >> p.dtype)) throw std::runtime_error(path + ": bad line: " + line);
        for (std::string kv; ss >> kv;) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0)
                throw std::runtime_error(path + ": bad value '" + kv + "' in: " + line);
            p.values[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        f.lines.push_back(p);
    }
    return f;
}

ParamValues ParamsFile::lookup(const std::string& generator, const std::string& layout,
                               const std::string& dtype) const {
    for (const ParamsLine& p : lines) {
        if (p.generator == generator && (p.layout == layout || p.layout == "*") &&
            (p.dtype == dtype || p.dtype == "*")) {
            return p.values;
        }
    }
    return {};
}

namespace {
// Provenance lines of earlier versions of the file, replaced by the new one.
bool is_provenance(const std::string& line) {
    return line.rfind("# Chosen by hand", 0) == 0 || line.rfind("# Written by iabn-tune", 0) == 0 ||
           line.rfind("#   iabn-tune", 0) == 0;
}

std::string pad(const std::string& s, size_t width) {
    return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}
}  // namespace

std::string render(const ParamsFile& old, const std::vector<std::string>& provenance,
                   const std::vector<TunedLine>& lines) {
    std::ostringstream out;
    for (const std::string& h : old.header) {
        if (!is_provenance(h)) out << h << "\n";
    }
    for (const std::string& p : provenance) out << p << "\n";
    std::set<std::string> written;
    for (const TunedLine& t : lines) {
        if (!t.comment.empty()) out << "#: " << t.comment << "\n";
        std::string values;
        for (const auto& [k, v] : ordered(t.values)) values += (values.empty() ? "" : " ") + k + "=" + v;
        out << pad(t.generator, 17) << pad(t.layout, 5) << "*  " << values << "\n";
        written.insert(t.generator);
    }
    for (const ParamsLine& p : old.lines) {
        if (!written.count(p.generator)) out << p.text << "\n";
    }
    return out.str();
}

}  // namespace iabn_tune
