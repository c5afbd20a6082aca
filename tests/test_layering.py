"""Keep DESIGN.md's "What may import what" table true, by reading every import with `ast`.

Every .py file under daemon/hubhop and native/hubhop_native is parsed (nothing is imported), and
every import is collected: `import a.b`, `from a.b import c` (as `a.b.c` when that is a module,
else `a.b`), relative imports resolved against the file's package, imports nested inside
functions, classes and `if TYPE_CHECKING:` blocks, and `importlib.import_module("...")` /
`__import__("...")` with a literal name.

Approach, per package:
- `hubhop.core`, `hubhop.wan` (pure like the core) and `hubhop_native` use an ALLOWLIST. The
  rule for them is what they may use ("stdlib data and maths"; "numpy, numba, math"), and the
  set of I/O-capable modules is open ended (os, io, time, datetime.now, uuid1, secrets, logging
  handlers, mmap, ...), so a denylist would pass whatever nobody thought to list. A new
  dependency therefore has to be added here on purpose, with a reason, which is the review this
  rule wants. `random` is allowed in the core for `random.Random` as an explicit rng argument; an
  import test cannot see calls on the module-level generator, so that part of the rule stays
  with review.
- `hubhop.scoring`, `hubhop.io` and the `hubhop.app` rule use a DENYLIST: those layers may use
  most of the stdlib and their dependencies, and the table names exactly what they must never
  reach. The lists also forbid reaching a layer above (scoring → io/app/cli, io → cli-level
  modules), which the table implies.
- `hubhop.loadgen` and `hubhop.lab` (tools beside the daemon: a load generator, an emulated
  network of real processes) have a pure half on an ALLOWLIST and the rest on a DENYLIST; the
  daemon's own layers may import neither.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_ROOTS = (REPO / "daemon", REPO / "native")
PACKAGES = ("hubhop", "hubhop_native")

# Pure stdlib modules: data structures, maths, text, encodings, parsing of in-memory values.
CORE_STDLIB = frozenset(
    {
        "__future__",
        "typing",
        "types",
        "abc",
        "dataclasses",
        "enum",
        "collections",  # includes collections.abc
        "functools",
        "itertools",
        "operator",
        "contextlib",
        "copy",
        "math",
        "cmath",
        "statistics",
        "decimal",
        "fractions",
        "numbers",
        "random",  # for random.Random passed in as the rng; see the module docstring
        "bisect",
        "heapq",
        "graphlib",
        "array",
        "struct",
        "binascii",
        "base64",
        "hashlib",
        "hmac",
        "zlib",
        "re",
        "string",
        "textwrap",
        "unicodedata",
        "json",
        "tomllib",
        "ipaddress",
        "urllib.parse",  # only the parser: urllib.request does network I/O
    }
)
CORE_THIRD_PARTY = frozenset({"msgpack", "numpy", "cryptography"})
CORE_ALLOWED = CORE_STDLIB | CORE_THIRD_PARTY | {"hubhop.core"}
CORE_RULE = (
    "hubhop.core may import only stdlib data/maths modules, msgpack, numpy, cryptography and "
    "hubhop.core (sans-IO: no sockets, asyncio, clocks, threads, signals or numba)"
)
# Named explicitly by DESIGN.md; a hit says so in the message.
CORE_NAMED_NEVER = (
    "asyncio",
    "socket",
    "time",
    "threading",
    "signal",
    "aiohttp",
    "grpc",
    "uvloop",
    "numba",
    "hubhop.io",
    "hubhop.app",
)

# hubhop.wan (the emulated WAN's topology and latency model) is pure like the core, with the
# same allowlist, and may also use the core (tiers, name patterns). The asyncio adapter that
# delays real sends is hubhop.io.wan_delay: hubhop.io may import hubhop.wan (its denylist does
# not name it). The core never imports hubhop.wan: emulation stays outside the core.
WAN_ALLOWED = CORE_STDLIB | CORE_THIRD_PARTY | {"hubhop.core", "hubhop.wan"}
WAN_RULE = (
    "hubhop.wan may import only what hubhop.core may, plus hubhop.core and hubhop.wan "
    "(pure: no sockets, asyncio, clocks, threads, signals or numba)"
)

# heapq joins DESIGN.md's list: the NumPy references are test oracles, and a stdlib heap keeps the
# path reference independent of the kernel's own hand-written heap. It is pure computation.
NATIVE_ALLOWED = frozenset(
    {"__future__", "typing", "numpy", "numba", "math", "heapq", "hubhop_native"}
)
NATIVE_RULE = (
    "hubhop_native may import only numpy, numba, math, heapq (plus __future__, typing and itself): "
    "nothing of hubhop, no I/O"
)

SCORING_NEVER = (
    "asyncio",
    "aiohttp",
    "grpc",
    "uvloop",
    "hubhop.io",
    "hubhop.app",
    "hubhop.cli",
    "hubhop.loadgen",
    "hubhop.lab",
    "hubhop.api",
)
SCORING_RULE = (
    "hubhop.scoring (the kernels' bridge) never imports asyncio/aiohttp/grpc or a layer above"
)

# hubhop.demo and hubhop.loadgen are CLI commands (they start nodes, send load), so the adapters
# must not reach them either.
IO_NEVER = ("hubhop.app", "hubhop.cli", "hubhop.demo", "hubhop.loadgen", "hubhop.lab")
IO_RULE = "hubhop.io never imports hubhop.app, hubhop.cli or other command-level modules"

# hubhop.loadgen (`hubhop loadgen`) is a client of any hubhop network: its pure half (the
# workload file, the arrival schedule, request shapes, outcomes, statistics, the printed report)
# takes time and randomness as arguments like the core, with the core's ALLOWLIST plus hdrh
# (HDR histograms: arithmetic on arrays of counts, no I/O) and hubhop.cli_tables (the commands'
# pure text tables). Its other modules (the asyncio sender, files, the command) use a DENYLIST:
# never the daemon's composition root, the commands above it, or the scoring bridge (a load
# generator does not load numba).
LOADGEN_PURE = tuple(
    f"hubhop.loadgen.{name}"
    for name in ("workload", "schedule", "request_shapes", "outcome", "stats", "report")
)
LOADGEN_PURE_ALLOWED = CORE_STDLIB | {"hdrh", "hubhop.core", "hubhop.cli_tables", *LOADGEN_PURE}
LOADGEN_PURE_RULE = (
    "hubhop.loadgen's pure modules may import only what hubhop.core may (but msgpack, numpy, "
    "cryptography), hdrh, hubhop.core, hubhop.cli_tables and each other: no sockets, asyncio, "
    "clocks or files"
)
LOADGEN_NEVER = (
    "hubhop.app",
    "hubhop.cli",
    "hubhop.demo",
    "hubhop.lab",
    "hubhop.scoring",
    "hubhop_native",
)
LOADGEN_RULE = (
    "hubhop.loadgen never imports hubhop.app, hubhop.cli, hubhop.demo, hubhop.lab or the scoring "
    "kernels"
)

# hubhop.lab (an emulated network as real processes, shared by the demo, the benchmarks and the
# tests) is an I/O-side adapter like hubhop.io: it starts processes, opens sockets, writes
# files. Its pure half (which backends each site fronts, which sites run) takes the parsed
# topology like hubhop.wan does, with the same ALLOWLIST plus hubhop.wan and each other. Its
# other modules use a DENYLIST: the lab runs daemons as processes and talks to them over HTTP,
# so it never builds a node or an adapter in-process (hubhop.app, hubhop.io, the kernels), and it
# sits below the commands that use it (hubhop.cli, hubhop.demo, hubhop.loadgen). Nothing of the
# daemon's own layers may import it (IO_NEVER, SCORING_NEVER; the core and wan allowlists).
LAB_PURE = tuple(f"hubhop.lab.{name}" for name in ("profiles", "network_slice"))
LAB_PURE_ALLOWED = CORE_STDLIB | {"hubhop.core", "hubhop.wan", *LAB_PURE}
LAB_PURE_RULE = (
    "hubhop.lab's pure modules may import only what hubhop.core may (but msgpack, numpy, "
    "cryptography), hubhop.core, hubhop.wan and each other: no processes, sockets or files"
)
LAB_NEVER = (
    "hubhop.app",
    "hubhop.cli",
    "hubhop.demo",
    "hubhop.loadgen",
    "hubhop.io",
    "hubhop.scoring",
    "hubhop_native",
)
LAB_RULE = (
    "hubhop.lab never imports hubhop.app, hubhop.io, the scoring kernels or the commands above "
    "it (hubhop.cli, hubhop.demo, hubhop.loadgen)"
)

# The tools beside the daemon: (package, its pure modules, what those may import and the rule,
# what the package's other modules never import and the rule).
TOOL_RULES = (
    (
        "hubhop.loadgen",
        LOADGEN_PURE,
        LOADGEN_PURE_ALLOWED,
        LOADGEN_PURE_RULE,
        LOADGEN_NEVER,
        LOADGEN_RULE,
    ),
    ("hubhop.lab", LAB_PURE, LAB_PURE_ALLOWED, LAB_PURE_RULE, LAB_NEVER, LAB_RULE),
)

# hubhop.api holds protoc's output (proto/generate.py): messages and service stubs, which use
# only protobuf's runtime, grpc and each other (plus `warnings`, for grpc's version check). It is
# an ALLOWLIST like the core's: generated code that reached further would be a generator bug.
# Being grpc, it is for the adapters (hubhop.io) and above: the core's allowlist leaves it out,
# and the kernels' bridge never imports it.
API_ALLOWED = frozenset({"grpc", "google.protobuf", "warnings", "hubhop.api"})
API_RULE = (
    "hubhop.api (generated stubs) may import only grpc, google.protobuf, warnings and hubhop.api"
)

APP_RULE = "hubhop.app is imported only by hubhop.cli (and tests)"


@dataclass(frozen=True)
class Module:
    path: Path
    name: str
    is_package: bool

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    line: int
    target: str


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def find_modules(roots: Iterable[Path]) -> list[Module]:
    modules = []
    for root in roots:
        for top in PACKAGES:
            base = root / top
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.py")):
                parts = list(path.relative_to(root).with_suffix("").parts)
                is_package = parts[-1] == "__init__"
                if is_package:
                    parts.pop()
                modules.append(Module(path, ".".join(parts), is_package))
    return modules


def _is_stdlib_submodule(name: str) -> bool:
    if name.partition(".")[0] not in sys.stdlib_module_names:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _is_module(name: str, known: set[str]) -> bool:
    if name.partition(".")[0] in PACKAGES:
        return name in known
    return _is_stdlib_submodule(name)


def imports_of(module: Module, known: set[str]) -> list[Import | str]:
    """Every import in `module`, resolved to absolute dotted names; a str is a fault found."""
    tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    found: list[Import | str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.package.split(".")
                if node.level - 1 >= len(parts):
                    found.append(f"{node.lineno}: relative import goes above the top package")
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                target = candidate if _is_module(candidate, known) else source
                found.append(Import(node.lineno, target))
        elif isinstance(node, ast.Call):
            func = node.func
            dynamic = (isinstance(func, ast.Name) and func.id == "__import__") or (
                isinstance(func, ast.Attribute) and func.attr == "import_module"
            )
            if dynamic and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append(Import(node.lineno, first.value))
                else:
                    found.append(Import(node.lineno, "<dynamic import>"))
    return found


def check_import(importer: str, target: str) -> str | None:
    """The rule `importer` breaks by importing `target`, or None."""
    if within(importer, "hubhop.core"):
        if any(within(target, allowed) for allowed in CORE_ALLOWED):
            return None
        named = any(within(target, never) for never in CORE_NAMED_NEVER)
        return CORE_RULE + (" (DESIGN.md names it explicitly)" if named else "")
    if within(importer, "hubhop.wan"):
        if any(within(target, allowed) for allowed in WAN_ALLOWED):
            return None
        named = any(within(target, never) for never in CORE_NAMED_NEVER)
        return WAN_RULE + (" (DESIGN.md names it explicitly)" if named else "")
    if within(importer, "hubhop_native"):
        if any(within(target, allowed) for allowed in NATIVE_ALLOWED):
            return None
        return NATIVE_RULE
    if within(importer, "hubhop.api"):
        return None if any(within(target, a) for a in API_ALLOWED) else API_RULE
    for package, pure, allowed, pure_rule, never, rule in TOOL_RULES:
        if any(within(importer, module) for module in pure):
            return None if any(within(target, a) for a in allowed) else pure_rule
        if within(importer, package) and any(within(target, n) for n in never):
            return rule
    if within(importer, "hubhop.scoring") and any(within(target, n) for n in SCORING_NEVER):
        return SCORING_RULE
    if within(importer, "hubhop.io") and any(within(target, n) for n in IO_NEVER):
        return IO_RULE
    if (
        within(target, "hubhop.app")
        and not within(importer, "hubhop.cli")
        and not within(importer, "hubhop.app")
    ):
        return APP_RULE
    return None


def violations(roots: Iterable[Path]) -> list[str]:
    roots = list(roots)
    modules = find_modules(roots)
    known = {m.name for m in modules}
    out = []
    for module in modules:
        shown = next(
            (
                str(module.path.relative_to(r.parent))
                for r in roots
                if module.path.is_relative_to(r)
            ),
            str(module.path),
        )
        for item in imports_of(module, known):
            if isinstance(item, str):
                out.append(f"{shown}:{item}")
                continue
            rule = check_import(module.name, item.target)
            if rule:
                out.append(f"{shown}:{item.line} imports {item.target}: {rule}")
    return out


# ---------------------------------------------------------------------------------------------


def test_the_real_tree_keeps_the_import_rules() -> None:
    found = violations(REAL_ROOTS)
    assert not found, "import rules of DESIGN.md broken:\n" + "\n".join(found)


def test_the_walker_sees_every_package() -> None:
    # Guard against a vacuous pass: wrong roots or a parser that sees nothing would find no
    # violations too.
    modules = find_modules(REAL_ROOTS)
    known = {m.name for m in modules}
    for package in (
        "hubhop.core",
        "hubhop.io",
        "hubhop.wan",
        "hubhop.loadgen",
        "hubhop.lab",
        "hubhop.demo",
        "hubhop.api",
        "hubhop_native",
    ):
        members = [m for m in modules if within(m.name, package)]
        assert members, f"no modules found in {package}"
    # A renamed module would leave its rule guarding nothing.
    for pure in (*LOADGEN_PURE, *LAB_PURE):
        assert pure in known, f"{pure} is named by a pure-module rule but does not exist"
    for single in ("hubhop.cli", "hubhop.app", "hubhop.core.config"):
        assert single in known
    by_name = {m.name: m for m in modules}
    core_imports = [
        i for m in modules if within(m.name, "hubhop.core") for i in imports_of(m, known)
    ]
    assert any(isinstance(i, Import) and i.target == "tomllib" for i in core_imports)
    # cli imports the composition root inside a function: the walker must see nested imports.
    cli_targets = {
        i.target for i in imports_of(by_name["hubhop.cli"], known) if isinstance(i, Import)
    }
    assert "hubhop.app" in cli_targets
    assert "hubhop.core.config" in cli_targets


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


PACKAGE_INITS = {
    "daemon/hubhop/__init__.py": "",
    "daemon/hubhop/core/__init__.py": "",
    "daemon/hubhop/core/good.py": "import math\nfrom collections.abc import Mapping\n",
    "daemon/hubhop/io/__init__.py": "",
    "daemon/hubhop/scoring/__init__.py": "",
    "daemon/hubhop/app.py": "import asyncio\nfrom hubhop.io import adapter\n",
    "daemon/hubhop/cli.py": "def run():\n    from hubhop.app import main\n",
    "daemon/hubhop/io/adapter.py": "import asyncio\nimport aiohttp\nfrom ..core import good\n",
    "native/hubhop_native/__init__.py": "from __future__ import annotations\nimport numpy as np\n",
}


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    write_tree(tmp_path, PACKAGE_INITS)
    assert violations([tmp_path / "daemon", tmp_path / "native"]) == []


def test_synthetic_bad_modules_are_flagged_with_file_line_and_rule(tmp_path: Path) -> None:
    bad = {
        "daemon/hubhop/core/bad.py": (
            "import socket\n"  # 1
            "from urllib.parse import urlsplit\n"  # 2: allowed
            "from urllib import request\n"  # 3: urllib.request is I/O
            "def later():\n"  # 4
            "    from ..io import adapter\n"  # 5: nested and relative
            "    import os.path\n"  # 6
            "from . import good\n"  # 7: allowed
            "import importlib\n"  # 8
            "importlib.import_module('time')\n"  # 9
        ),
        "daemon/hubhop/io/sneaky.py": "from hubhop import cli\n",
        "daemon/hubhop/scoring/bridge.py": "import numpy\nimport asyncio\n",
        "daemon/hubhop/demo.py": "import hubhop.app\n",
        "native/hubhop_native/kernels.py": "import math\nimport os\nfrom hubhop.core import good\n",
    }
    write_tree(tmp_path, {**PACKAGE_INITS, **bad})
    found = violations([tmp_path / "daemon", tmp_path / "native"])
    named = CORE_RULE + " (DESIGN.md names it explicitly)"
    expected = [
        ("daemon/hubhop/core/bad.py:1 imports socket", named),
        ("daemon/hubhop/core/bad.py:3 imports urllib.request", CORE_RULE),
        ("daemon/hubhop/core/bad.py:5 imports hubhop.io.adapter", named),
        ("daemon/hubhop/core/bad.py:6 imports os.path", CORE_RULE),
        ("daemon/hubhop/core/bad.py:8 imports importlib", CORE_RULE),
        ("daemon/hubhop/core/bad.py:9 imports time", named),
        ("daemon/hubhop/io/sneaky.py:1 imports hubhop.cli", IO_RULE),
        ("daemon/hubhop/scoring/bridge.py:2 imports asyncio", SCORING_RULE),
        ("daemon/hubhop/demo.py:1 imports hubhop.app", APP_RULE),
        ("native/hubhop_native/kernels.py:2 imports os", NATIVE_RULE),
        ("native/hubhop_native/kernels.py:3 imports hubhop.core.good", NATIVE_RULE),
    ]
    assert sorted(found) == sorted(f"{where}: {rule}" for where, rule in expected)


def test_relative_import_above_the_top_package_is_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, {**PACKAGE_INITS, "daemon/hubhop/core/up.py": "from .... import x\n"})
    (fault,) = violations([tmp_path / "daemon"])
    assert fault.startswith("daemon/hubhop/core/up.py:1: relative import goes above")


@pytest.mark.parametrize(
    ("importer", "target", "broken"),
    [
        ("hubhop.core.wire", "msgpack", False),
        ("hubhop.core.wire", "cryptography.hazmat.primitives.ciphers.aead", False),
        ("hubhop.core.wire", "numpy.typing", False),
        ("hubhop.core.wire", "numba", True),
        ("hubhop.core.wire", "hubhop.scoring", True),
        ("hubhop.core.wire", "hubhop.core_extras", True),  # a prefix is not a package
        ("hubhop.core.wire", "uvloop", True),
        ("hubhop_native.kernels", "numba.np.unsafe", False),
        ("hubhop_native.kernels", "hubhop", True),
        ("hubhop.scoring.bridge", "hubhop_native.kernels", False),
        ("hubhop.scoring.bridge", "grpc", True),
        ("hubhop.io.gossip", "hubhop.scoring", False),
        ("hubhop.io.gossip", "hubhop.app", True),
        ("hubhop.cli", "hubhop.app", False),
        ("hubhop.demo", "hubhop.app", True),
        ("hubhop.wan.model", "hubhop.core.tiers", False),
        ("hubhop.wan.model", "hubhop.wan.topology", False),
        ("hubhop.wan.topology", "tomllib", False),
        ("hubhop.wan.model", "asyncio", True),
        ("hubhop.wan.model", "time", True),
        ("hubhop.wan.topology", "pathlib", True),
        ("hubhop.wan.model", "hubhop.io.wan_delay", True),
        ("hubhop.io.wan_delay", "hubhop.wan.model", False),
        ("hubhop.core.swim", "hubhop.wan.model", True),
        ("hubhop.loadgen.workload", "hubhop.core.toml_table", False),
        ("hubhop.loadgen.stats", "hdrh.histogram", False),
        ("hubhop.loadgen.report", "hubhop.cli_tables", False),
        ("hubhop.loadgen.schedule", "hubhop.loadgen.workload", False),
        ("hubhop.loadgen.schedule", "time", True),
        ("hubhop.loadgen.stats", "asyncio", True),
        ("hubhop.loadgen.workload", "pathlib", True),
        ("hubhop.loadgen.outcome", "aiohttp", True),
        ("hubhop.loadgen.report", "hubhop.loadgen.runner", True),
        ("hubhop.loadgen.runner", "aiohttp", False),
        ("hubhop.loadgen.command", "hubhop.io.loop", False),
        ("hubhop.loadgen.command", "hubhop.app", True),
        ("hubhop.loadgen.runner", "hubhop.scoring", True),
        ("hubhop.io.local_endpoint", "hubhop.loadgen.runner", True),
        ("hubhop.scoring.route", "hubhop.loadgen", True),
        ("hubhop.core.config", "hubhop.loadgen.workload", True),
        ("hubhop.lab.cluster", "hubhop.wan.model", False),
        ("hubhop.lab.cluster", "subprocess", False),
        ("hubhop.lab.processes", "hubhop.app", True),
        ("hubhop.lab.processes", "hubhop.io.loop", True),
        ("hubhop.lab.backends", "hubhop.demo.command", True),
        ("hubhop.lab.cluster", "hubhop.scoring", True),
        ("hubhop.lab.profiles", "hubhop.wan.topology", False),
        ("hubhop.lab.profiles", "zlib", False),
        ("hubhop.lab.network_slice", "hubhop.lab.profiles", False),
        ("hubhop.lab.network_slice", "hubhop.lab.processes", True),
        ("hubhop.lab.profiles", "pathlib", True),
        ("hubhop.demo.command", "hubhop.lab.cluster", False),
        ("hubhop.demo.command", "hubhop.loadgen.runner", False),
        ("hubhop.io.local_endpoint", "hubhop.lab.processes", True),
        ("hubhop.scoring.route", "hubhop.lab", True),
        ("hubhop.loadgen.runner", "hubhop.lab.cluster", True),
        ("hubhop.core.config", "hubhop.lab.profiles", True),
        ("hubhop.wan.model", "hubhop.lab.profiles", True),
        ("hubhop.api.v1.hubhop_pb2_grpc", "hubhop.api.v1.hubhop_pb2", False),
        ("hubhop.api.v1.hubhop_pb2", "google.protobuf.internal.builder", False),
        ("hubhop.api.v1.hubhop_pb2_grpc", "grpc", False),
        ("hubhop.api.v1.hubhop_pb2_grpc", "hubhop.v1", True),  # protoc's import, not rewritten
        ("hubhop.api.v1.hubhop_pb2", "hubhop.io.grpc_api", True),
        ("hubhop.io.grpc_api", "hubhop.api.v1.hubhop_pb2", False),
        ("hubhop.core.grpc_config", "hubhop.api.v1.hubhop_pb2", True),
        ("hubhop.scoring.route", "hubhop.api.v1.hubhop_pb2", True),
    ],
)
def test_rules_table(importer: str, target: str, broken: bool) -> None:
    assert (check_import(importer, target) is not None) is broken
