#include "compare.h"

#include <sstream>

namespace iabn_test {
namespace {

// !(error <= tolerance): NaN is a mismatch.
void check(std::vector<Mismatch>& out, const std::string& what, double err, double tolerance) {
    if (!(err <= tolerance)) out.push_back({what, err, tolerance});
}

}  // namespace

std::string describe(const std::vector<Mismatch>& mismatches) {
    std::ostringstream out;
    for (const Mismatch& m : mismatches) {
        out << m.what << ": error " << m.error << " > tolerance " << m.tolerance << "\n";
    }
    return out.str();
}

// rel_err, or rel_err_floor where a scale is given.
double error(const std::vector<double>& got, const std::vector<double>& want, const std::vector<double>* scale,
             double floor) {
    return scale ? rel_err_floor(got, want, *scale, floor) : rel_err(got, want);
}

std::vector<Mismatch> compare_forward(const ForwardOutputs& got, const ref::ForwardResult& r, bool batch_stats,
                                      const ForwardTolerances& tol, const ForwardFloors& f) {
    std::vector<Mismatch> out;
    check(out, "z (read back from the x buffer)", error(got.z, r.z, f.z_scale, f.floor), tol.z);
    if (batch_stats) {
        check(out, "saved_mean", error(got.saved_mean, r.saved_mean, f.mean_scale, f.floor), tol.mean);
        check(out, "saved_invstd", rel_err(got.saved_invstd, r.saved_invstd), tol.spread);
        check(out, "running_mean (momentum update)",
              error(got.running_mean, r.running_mean, f.running_mean_scale, f.floor), tol.mean);
        check(out, "running_var (momentum update)",
              error(got.running_var, r.running_var, f.running_var_scale, f.floor), tol.spread);
    }
    return out;
}

std::vector<Mismatch> compare_backward(const BackwardOutputs& got, const ref::BackwardResult& r,
                                       const BackwardTolerances& tol, const BackwardFloors& floors) {
    std::vector<Mismatch> out;
    const auto& dx_scale = floors.dx_scale ? *floors.dx_scale : r.dx_scale;
    const auto& wg_scale = floors.weight_grad_scale ? *floors.weight_grad_scale : r.weight_grad_scale;
    const auto& bg_scale = floors.bias_grad_scale ? *floors.bias_grad_scale : r.bias_grad_scale;
    check(out, "dx (read back from the dz buffer)", rel_err_floor(got.dx, r.dx, dx_scale, floors.floor, floors.skip),
          tol.dx);
    const int64_t nonfinite = count_nonfinite(got.dx);
    if (nonfinite != 0) out.push_back({"dx: number of NaN/inf elements", static_cast<double>(nonfinite), 0});
    if (got.grads) {
        check(out, "weight_grad", rel_err_floor(got.weight_grad, r.weight_grad, wg_scale, floors.floor), tol.grads);
        check(out, "bias_grad", rel_err_floor(got.bias_grad, r.bias_grad, bg_scale, floors.floor), tol.grads);
    }
    return out;
}

}  // namespace iabn_test
