"""The package itself, with no framework: its version is the library's and the repository's."""

import importlib.metadata
import pathlib

import iabn


def test_version_is_the_same_everywhere():
    repository = (pathlib.Path(__file__).resolve().parents[2] / "VERSION").read_text().strip()
    assert iabn.__version__ == repository  # the C++ library's iabn::version()
    assert importlib.metadata.version("iabn") == repository  # the installed package's metadata
