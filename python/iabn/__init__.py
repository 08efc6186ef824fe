"""iabn: In-Place Activated BatchNorm kernels (generated with Halide) for Python.

``iabn.torch`` has the PyTorch module and function, ``iabn.paddle`` the PaddlePaddle 3 layer and
function (each needs its framework; neither is imported here); ``iabn._iabn`` is the binding of
the C++ API over raw pointers, which both use.
"""

from . import _iabn

__all__ = ["__version__", "kernel_target", "has_cuda_kernels", "set_num_threads"]

# The library's version: the same number as the package's (both from the repository's VERSION).
__version__ = _iabn.version()

kernel_target = _iabn.kernel_target
has_cuda_kernels = _iabn.has_cuda_kernels
set_num_threads = _iabn.set_num_threads
