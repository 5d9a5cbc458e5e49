"""The import contract: each outside library lives in one adapter module; the pure core
(policy -> desired -> plan -> report) reads no files and imports no adapter."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "multiarchd"
ADAPTERS = {"yaml": ("yamlsrc.py",), "pydbus": ("dbus.py",), "gi": ("loop.py", "dbus.py"),
            "systemd": ("systemd_glue.py",), "watchdog": ("watch.py",)}
PURE = {"desired.py", "plan.py", "report.py", "entry.py", "flags.py", "problems.py", "facts.py", "probes.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.module:
                names.add("." + node.module.split(".")[0])
    return names


def test_each_library_is_imported_by_its_adapter_only() -> None:
    for path in PACKAGE.rglob("*.py"):
        for lib, adapter in ADAPTERS.items():
            if lib in imports(path):
                assert path.name in adapter, f"{path.relative_to(PACKAGE)} imports {lib}"


def test_pure_core_does_no_io_and_imports_no_edge() -> None:
    edges = {"os", "subprocess", "glob", "socket", ".binfmt", ".host", ".yamlsrc", ".apply"}
    for name in PURE:
        found = imports(PACKAGE / name) & edges
        # plan and report read the kernel's *data types* from binfmt, nothing else of it.
        if name in ("plan.py", "report.py"):
            found -= {".binfmt", ".apply"}
        assert not found, f"{name} imports {found}"
