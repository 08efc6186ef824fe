#!/usr/bin/env bash
# The PaddlePaddle package (iabn.paddle, python/) against this checkout's build, as tools/python.sh
# does the PyTorch one: installs build/ into build/prefix, makes build/paddle-venv (Debian's
# /usr/bin/python3; its site-packages give the build's setuptools, wheel and pybind11 and pytest)
# with the pinned Paddle of tools/requirements-paddle.txt (pip's cache stays in ~/.cache, outside
# the clone), pip-installs the package into it against that prefix, and runs tests/test_paddle.py
# (the memory example among them) and tests/test_paddle_sync.py (3 processes over gloo).
#   tools/paddle.sh [pytest arguments]      (after cmake --build build; tools/test.sh calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
cmake --install build --prefix build/prefix >/dev/null
venv=build/paddle-venv
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
# Once per change of the pin (a copy of the file is kept in the venv, as tools/deps.sh does).
if ! cmp -s tools/requirements-paddle.txt "$venv/requirements-paddle.txt"; then
    echo "iabn: installing Paddle into $venv (tools/requirements-paddle.txt)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tools/requirements-paddle.txt
    cp tools/requirements-paddle.txt "$venv/requirements-paddle.txt"
fi
CMAKE_PREFIX_PATH="$PWD/build/prefix" "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall \
    --no-deps --no-build-isolation ./python
# From build/: the checkout's python/iabn (no extension in it) must not shadow the installed package.
(cd build && paddle-venv/bin/python -m pytest -q -ra -p no:cacheprovider ../python/tests/test_paddle.py \
    ../python/tests/test_paddle_sync.py ../python/tests/test_package.py "$@")
