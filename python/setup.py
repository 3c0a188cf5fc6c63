"""The library inside the package, built from the Rust crate by setuptools-rust.

From the source tree the crate is the repository root (`../Cargo.toml`). An sdist cannot
reach outside its own directory, so `sdist` copies the crate into `rust/` of the archive, and
a build from the unpacked sdist finds it there: the sdist alone is enough to build a wheel.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension

HERE = os.path.dirname(os.path.abspath(__file__))
VENDORED = os.path.join(HERE, "rust")
SOURCE_TREE = os.path.join(HERE, "..")
# What the crate needs to build: the same list as `include` in Cargo.toml (benches too, since
# Cargo.toml names one and cargo refuses a manifest whose named target is missing).
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "build.rs", "README.md", "LICENSE", "cbindgen.toml",
               "taskmanager.pc.in", "src", "sql", "include", "benches", "examples"]


def crate_dir():
    return VENDORED if os.path.exists(os.path.join(VENDORED, "Cargo.toml")) else SOURCE_TREE


class SdistWithCrate(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        source = crate_dir()
        for name in CRATE_FILES:
            path = os.path.join(source, name)
            target = os.path.join(base_dir, "rust", name)
            if os.path.isdir(path):
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("target", "__pycache__"))
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(path, target)


class LibraryWheel(bdist_wheel):
    """ctypes loads the library, which links nothing of Python: one wheel per platform serves
    every Python 3, so the tag names no interpreter or ABI."""

    def get_tag(self):
        return ("py3", "none", super().get_tag()[2])


setup(
    rust_extensions=[
        RustExtension(
            "taskmanager.libtaskmanager",
            path=os.path.join(crate_dir(), "Cargo.toml"),
            binding=Binding.NoBinding,
            # The library alone: the operator CLI's crates are not needed here.
            args=["--no-default-features"],
        )
    ],
    cmdclass={"sdist": SdistWithCrate, "bdist_wheel": LibraryWheel},
)
