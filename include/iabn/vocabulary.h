// The public vocabularies of iabn, each listed once. The enums of iabn.h, their names
// (to_string, parse_activation), their counts and the lists the Python package reads
// (iabn._iabn.activations()) are all generated from these lines.
//
// Adding an activation: append it to IABN_ACTIVATION_LIST, then give it its math in
// generators/activation.h (the generators do not compile until every listed activation has a
// case there) and its entry in the float64 test reference (tests/). Every activation but
// identity takes activation_param, which must be finite and > 0.
#pragma once

#define IABN_DTYPE_LIST(X) X(f16) X(bf16) X(f32) X(f64)
#define IABN_DEVICE_LIST(X) X(cpu) X(cuda) X(opencl)
#define IABN_LAYOUT_LIST(X) X(nchw) X(nhwc)
#define IABN_ACTIVATION_LIST(X) X(identity) X(leaky_relu) X(elu)
