"""The generated gRPC stubs: checked in as proto/generate.py makes them, where it says they land."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("proto_generate", REPO / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_checked_in_stubs_are_what_the_protos_generate(tmp_path: Path) -> None:
    generator().generate(tmp_path)
    have = files(REPO / "daemon" / "hubhop" / "api")
    want = files(tmp_path / "hubhop" / "api")
    assert "v1/hubhop_pb2_grpc.py" in want
    assert sorted(have) == sorted(want), "run `make protos`: the generated files differ"
    differ = [name for name in want if have[name] != want[name]]
    assert not differ, f"run `make protos`: {differ} differ from what the .proto files generate"


def test_stubs_import_each_other_under_hubhop_api(tmp_path: Path) -> None:
    source = (REPO / "daemon" / "hubhop" / "api" / "v1" / "hubhop_pb2_grpc.py").read_text()
    assert "from hubhop.api.v1 import hubhop_pb2" in source
    assert "from hubhop.v1 import" not in source


def test_a_proto_outside_a_directory_or_landing_twice_is_refused(tmp_path: Path) -> None:
    gen = generator()
    (tmp_path / "loose.proto").write_text('syntax = "proto3";\npackage loose;\n')
    with pytest.raises(gen.GenerateError, match="put it in a directory"):
        gen.generate(tmp_path / "out", root=tmp_path)
    (tmp_path / "loose.proto").unlink()
    for folder in ("hubhop/v9", "v9"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x.proto").write_text('syntax = "proto3";\npackage v9;\n')
    with pytest.raises(gen.GenerateError, match="lands on hubhop/api/v9/x"):
        gen.generate(tmp_path / "out", root=tmp_path)
