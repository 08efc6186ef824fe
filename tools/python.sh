#!/usr/bin/env bash
# The PyTorch package (python/) against this checkout's build: installs build/ into build/prefix,
# makes build/venv (Debian's /usr/bin/python3, whose site-packages hold python3-torch), pip-installs
# the package into it against that prefix (no kernels generated again), and runs its pytest suite.
#   tools/python.sh [pytest arguments]      (after cmake --build build; tools/test.sh calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
cmake --install build --prefix build/prefix >/dev/null
[ -x build/venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages build/venv
# --no-build-isolation: the build uses the venv's setuptools, wheel and pybind11 (Debian's, through
# the system site-packages) instead of fetching them from PyPI, so it needs no network.
CMAKE_PREFIX_PATH="$PWD/build/prefix" build/venv/bin/pip install -q --force-reinstall --no-deps \
    --no-build-isolation ./python
# From build/: the checkout's python/iabn (no extension in it) must not shadow the installed package.
(cd build && venv/bin/python -m pytest -q -ra ../python/tests "$@")
