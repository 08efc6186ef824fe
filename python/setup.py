# Builds the extension module iabn._iabn with CMake (CMakeLists.txt here); the metadata is in
# pyproject.toml. setuptools runs the build because Debian 12 packages it (python3-setuptools,
# python3-wheel, python3-pybind11), so `pip install --no-build-isolation ./python` needs no network.
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pybind11
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(self.build_temp).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        # CMake reads CMAKE_PREFIX_PATH from the environment, which the child inherits: an installed
        # iabn found through it is linked, else CMakeLists.txt builds the library from the checkout.
        # -U iabn_DIR: the build directory is kept between installs, so search again each time
        # rather than keep the choice a previous CMAKE_PREFIX_PATH made.
        # Python_EXECUTABLE: the interpreter being installed into (a venv's, not the first on PATH).
        # pybind11_DIR: the pybind11 that pip provides, from PyPI or the environment's own.
        # Ninja where it is installed (iabn's own build uses it; a machine set up for iabn may have
        # no make), unless the user chose a generator or the kept build directory has one.
        generator = []
        if shutil.which("ninja") and not os.environ.get("CMAKE_GENERATOR") and not (build_dir / "CMakeCache.txt").exists():
            generator = ["-G", "Ninja"]
        subprocess.run(["cmake", "-S", str(HERE), "-B", str(build_dir), *generator, "-U", "iabn_DIR",
                        "-DCMAKE_BUILD_TYPE=Release", f"-DPython_EXECUTABLE={sys.executable}",
                        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"], check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "_iabn",
                        "--parallel", jobs], check=True)
        # The module is all the wheel needs (libiabn is static): copy it, under the name setuptools
        # expects, into the wheel's iabn/ (where CMakeLists.txt's install rule would put it).
        built = sorted(build_dir.glob("_iabn*.so"))
        if len(built) != 1:
            sys.exit(f"iabn: expected one _iabn*.so in {build_dir}, found {len(built)}")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built[0], target)


# The repository's VERSION, which the C++ library reports too (iabn.__version__ checks they agree).
VERSION = (HERE.parent / "VERSION").read_text().strip()

# Packages here: setuptools 66 (Debian 12) warns that pyproject.toml's [tool.setuptools] is beta.
setup(version=VERSION, packages=["iabn"], ext_modules=[Extension("iabn._iabn", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
