"""Build steps setup.cfg cannot declare: the gRPC stubs are generated from
crontrio/protos/crontrio.proto, so `pip install .` and `python -m build` work
from a clean clone without `make` (the stubs are not committed)."""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO = "crontrio/protos/crontrio.proto"
STUBS = ("crontrio_pb2.py", "crontrio_pb2_grpc.py", "crontrio_pb2.pyi")


def generate_stubs() -> None:
    """Run protoc unless the stubs are newer than the .proto (an sdist ships them).

    Compiled as crontrio/protos/crontrio.proto from the root, so the generated
    _grpc.py imports `crontrio.protos.crontrio_pb2`, the installed name.
    """
    proto = HERE / PROTO
    out = proto.parent
    if all((out / s).exists() and (out / s).stat().st_mtime >= proto.stat().st_mtime for s in STUBS):
        return
    from grpc_tools import protoc  # a build requirement (pyproject.toml)

    include = str(Path(protoc.__file__).resolve().parent / "_proto")  # google/protobuf/*.proto
    args = ["protoc", "-I.", f"-I{include}", "--python_out=.", "--grpc_python_out=.", "--pyi_out=.", PROTO]
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {PROTO}")
    finally:
        os.chdir(cwd)


class BuildPy(build_py):
    def run(self) -> None:
        generate_stubs()
        super().run()


class Sdist(sdist):
    def run(self) -> None:
        generate_stubs()
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
