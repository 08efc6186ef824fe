// The comparisons of iabn's outputs with the float64 reference (reference.h), without
// GoogleTest: the test suite (case_runner.cpp) reports every Mismatch as a test failure, the
// fuzzer (tests/fuzz) as a finding.
#pragma once

#include "error_measures.h"
#include "reference.h"

#include <string>
#include <vector>

namespace iabn_test {

struct Mismatch {
    std::string what;  // the output, and how it was measured
    double error = 0, tolerance = 0;
};

std::string describe(const std::vector<Mismatch>& mismatches);  // one line each

// What a forward call left in the caller's buffers, as doubles.
struct ForwardOutputs {
    std::vector<double> z;  // read back from the x buffer
    // Batch statistics only:
    std::vector<double> saved_mean, saved_invstd, running_mean, running_var;
};

// Norm-wise relative tolerances: z; the means (saved and running); saved_invstd and running_var.
struct ForwardTolerances {
    double z, mean, spread;
    static ForwardTolerances all(double tol) { return {tol, tol, tol}; }
};

// Optional floors (rel_err_floor): the operand magnitudes of z (per element) and of the means
// and running statistics (per channel). Without them the errors are plain rel_err.
struct ForwardFloors {
    double floor = 0.1;
    const std::vector<double>* z_scale = nullptr;
    const std::vector<double>* mean_scale = nullptr;          // saved_mean
    const std::vector<double>* running_mean_scale = nullptr;
    const std::vector<double>* running_var_scale = nullptr;
};

// z and, with batch statistics, the saved and running statistics (error_measures.h).
std::vector<Mismatch> compare_forward(const ForwardOutputs& got, const ref::ForwardResult& r, bool batch_stats,
                                      const ForwardTolerances& tol, const ForwardFloors& floors = ForwardFloors());

// What a backward call left in the caller's buffers, as doubles.
struct BackwardOutputs {
    std::vector<double> dx;                     // read back from the dz buffer
    std::vector<double> weight_grad, bias_grad; // when requested
    bool grads = false;                         // weight_grad and bias_grad were requested
};

// The operand magnitudes the errors are floored with (rel_err_floor): by default the reference's
// dx_scale, weight_grad_scale and bias_grad_scale; `skip` leaves elements out of dx (ELU
// saturated elements, whose dx the reference leaves undefined with batch statistics).
struct BackwardFloors {
    double floor = 0.1;
    const std::vector<double>* dx_scale = nullptr;
    const std::vector<double>* weight_grad_scale = nullptr;
    const std::vector<double>* bias_grad_scale = nullptr;
    const std::vector<char>* skip = nullptr;
};

// dx (floored norm-wise error, and no NaN/inf element), weight_grad and bias_grad when requested.
// Norm-wise relative tolerances: dx; weight_grad and bias_grad.
struct BackwardTolerances {
    double dx, grads;
    BackwardTolerances(double tol) : dx(tol), grads(tol) {}  // NOLINT: one budget for all
    BackwardTolerances(double dx_tol, double grads_tol) : dx(dx_tol), grads(grads_tol) {}
};

std::vector<Mismatch> compare_backward(const BackwardOutputs& got, const ref::BackwardResult& r,
                                       const BackwardTolerances& tol, const BackwardFloors& floors = BackwardFloors());

}  // namespace iabn_test
