"""The import rules of the layout (docs/architecture.md), checked on the source with a small AST walk.

- ``faceswap/`` (the domain library) imports no ``services`` module and no gRPC / Prometheus;
- ``services/common`` imports no service;
- a service package (``services.media``, ``services.detector``...) imports no other service package;
  only the top-level entry points (``services/cli.py``, ``bench.py``, ``bench_jobs.py``, ``demo.py``,
  ``k8s_worker.py``) wire several services together;
- no import cycles between modules, counting imports inside functions too (a lazy import may defer
  an optional heavy dependency, never hide a cycle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_FORBIDDEN = ("services", "grpc", "grpc_health", "grpc_reflection", "grpc_status", "prometheus_client")
SHARED = ("common", "pb")


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("faceswap", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "pb" in path.relative_to(ROOT).parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module name imported anywhere in the file (relative imports resolved); for ``from a
    import b`` the submodule ``a.b`` when it is one of ours, else ``a``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _service(name: str) -> str | None:
    """'services.media.core' -> 'media'; top-level services modules and shared packages -> None."""
    parts = name.split(".")
    if parts[0] != "services" or len(parts) < 2 or parts[1] in SHARED:
        return None
    if len(parts) == 2 and (MODULES.get(name) or Path()).name != "__init__.py":
        return None  # services/cli.py, bench.py, demo.py ...: entry points that wire everything
    return parts[1]


def test_library_imports_no_service_grpc_or_metrics() -> None:
    bad = [
        f"{src} imports {dst}"
        for src, deps in GRAPH.items()
        if _under(src, "faceswap")
        for dst in deps
        if any(_under(dst, f) for f in LIBRARY_FORBIDDEN)
    ]
    assert not bad, "the library must stay pure:\n" + "\n".join(bad)


def test_common_imports_no_service() -> None:
    bad = [
        f"{src} imports {dst}"
        for src, deps in GRAPH.items()
        if _under(src, "services.common")
        for dst in deps
        if _under(dst, "services") and not _under(dst, "services.common")
    ]
    assert not bad, "services/common must not know any service:\n" + "\n".join(bad)


def test_services_never_import_each_other() -> None:
    bad = []
    for src, deps in GRAPH.items():
        mine = _service(src)
        if mine is None:
            continue
        for dst in deps:
            if not _under(dst, "services"):
                continue
            theirs = _service(dst)
            if dst.count(".") == 1 and theirs is None and not _under(dst, "services.common"):
                bad.append(f"{src} imports the entry point {dst}")
            elif theirs is not None and theirs != mine:
                bad.append(f"{src} imports {dst}")
    assert not bad, "a service imports another (move the shared code into faceswap/):\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    edges = defaultdict(set)
    for src, deps in GRAPH.items():
        for dst in deps:
            # importing a.b.c runs a and a.b too
            parts = dst.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in MODULES and target != src and not _under(src, target):
                    edges[src].add(target)
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(MODULES):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_one_definition_of_each_shared_concept() -> None:
    """The concepts that used to be copied between services have one home in the library."""
    defs = defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defs[node.name].append(name)
    for concept, home in (
        ("umeyama", "faceswap.face.geometry"),
        ("select_range", "faceswap.media.store"),
        ("ConvertOptions", "faceswap.options.convert"),
        ("TrainOptions", "faceswap.options.train"),
        ("DetectOptions", "faceswap.options.detect"),
        ("decode_image", "faceswap.face.images"),
        ("json_safe", "faceswap.jsonsafe"),
        ("read_frames", "faceswap.media.frames"),
    ):
        assert defs[concept] == [home], f"{concept} is defined in {defs[concept]}, expected only {home}"
    copies = {name: where for name, where in defs.items() if name in ("_json_safe", "_jsonable", "_plain")}
    assert not copies, f"JSON-safe helpers besides faceswap.jsonsafe.json_safe: {copies}"


# Nothing is left out of the checks below any more (the live service reads files through the
# library and cameras through faceswap.media.camera).
NOT_YET: tuple[str, ...] = ()


def _strings(name: str) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(MODULES[name].read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _checked(homes: tuple[str, ...]) -> list[str]:
    return [n for n in MODULES if not any(_under(n, x) for x in (*homes, *NOT_YET))]


def test_one_video_reader() -> None:
    """Videos are read by faceswap.media (one ffmpeg pipe, rotation applied), never by cv2 elsewhere."""
    bad = [
        f"{name}:{node.lineno}"
        for name in _checked(("faceswap.media",))
        for node in ast.walk(ast.parse(MODULES[name].read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "VideoCapture"
    ]
    assert not bad, "cv2.VideoCapture outside faceswap/media (use faceswap.media.frames.read_frames):\n" + (
        "\n".join(bad)
    )


def test_file_names_and_extensions_have_one_home() -> None:
    """The face-set and model file names are spelled in faceswap.face.alignments / faceswap.model.layout
    (ALIGNMENTS_NAME, alignments_key, CHECKPOINT, metadata_key ...), the media extensions in
    faceswap.media (kinds: what is an image or a video; frames: which container takes which codec);
    a string that is one of them, or a key ending in one, is a copy."""
    rules = (
        (("alignments.json",), ("faceswap.face.alignments",)),
        (("checkpoint.pt", "checkpoint.json"), ("faceswap.model.layout",)),
        ((".webp", ".m4v", ".mkv", ".bmp"), ("faceswap.media",)),
    )
    bad = []
    for names, homes in rules:
        for name in _checked(homes):
            for line, text in _strings(name):
                if text in names or any(text.endswith("/" + n) for n in names):
                    bad.append(f"{name}:{line}: {text!r} (home: {homes[0]})")
    assert not bad, "file names or extensions spelled outside their home:\n" + "\n".join(bad)
