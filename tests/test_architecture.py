"""The package's floors, checked from the source (AST), function-level imports included.

* no import cycle between modules (a package's ``__init__`` importing its own submodules is its face,
  not a cycle);
* nothing in the lower floors (``data/``, ``geometry/``, ``features/``, ``models/`` and the ground-floor
  modules) imports a higher one (``alignment/``, ``scoring/``, ``leaderboard/``, ``demo/``, ``cli/``, ...);
* no module imports another subpackage's private names (``_x``) or private modules
  (``brainlid/__main__.py`` calling the CLI's entry point aside);
* no module over ~500 lines unless its docstring says it is one topic;
* every import inside a function says why it is not at the top of its module (a comment on its lines, or a
  ``#`` line heading its block of imports: ``# heavy: torch``, ``# optional: dask``, ``# start-up: ...``);
  a comment blaming an import cycle does not count (there are none: fix the cycle instead).

``python tests/test_architecture.py`` prints every violation (the tests stop at the first kind).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "brainlid"
if not PKG.is_dir():  # tests/<sub>/test_architecture.py
    PKG = Path(__file__).resolve().parents[2] / "brainlid"

# floor of each top-level part of the package; an import may go to the same or a lower floor only
FLOORS = {
    "_version": 0, "_docs": 0, "_lazy": 0, "_atomic": 0, "_progress": 0, "_deprecate": 0, "errors": 0, "config": 0,
    "backend": 0, "stats": 0, "io": 0, "py": 0,
    "data": 1, "geometry": 1, "features": 1, "models": 1, "datasets": 1,
    "alignment": 2,
    "scoring": 3, "comparison": 3, "analysis": 3, "plotting": 3, "report": 3,
    "leaderboard": 4, "demo": 4,
    "cli": 5, "__main__": 6, "__init__": 6,
}
LOWER = {"data", "geometry", "features", "models"}  # the rule: these import nothing above floor 1
LONG_MODULE = 520
ONE_TOPIC = "one topic"  # a long module's docstring says so


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _parse(mods: dict[str, Path]):
    """(importer, imported module, imported name or None, line) as written in the source."""
    out = []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "brainlid":
                        out.append((mod, a.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                if target.split(".")[0] != "brainlid":
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in mods:  # ``from . import runner``: the module itself
                        out.append((mod, sub, None, node.lineno))
                    else:
                        out.append((mod, target, (a.name, a.asname or a.name), node.lineno))
    return out


def imports(mods: dict[str, Path], *, through_faces: bool = True):
    """(importer, imported module, imported name or None, line) for every brainlid import in the tree.

    A name imported from a package's face (``from brainlid.scoring import score``) counts as an import of
    the submodule the face takes it from, so a cycle through a face is seen.
    """
    raw = _parse(mods)
    if not through_faces:
        return [(a, b, name[0] if name else None, line) for a, b, name, line in raw]
    reexport = {}  # (package, public name) -> the module the face imports it from
    for a, b, name, _ in raw:
        if name and mods[a].name == "__init__.py" and b.startswith(a + "."):
            reexport[(a, name[1])] = b
    out = []
    for a, b, name, line in raw:
        if name:
            seen = set()
            # follow the face's re-exports (not from inside the package itself: that is its own face)
            while (b, name[0]) in reexport and (b, name[0]) not in seen and not (a == b or a.startswith(b + ".")):
                seen.add((b, name[0]))
                b = reexport[(b, name[0])]
            name = name[0]
        out.append((a, b, name, line))
    return out


def _existing(name: str, mods) -> str:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _subpackage(mod: str, mods) -> str:
    """The subpackage a module belongs to (``brainlid.scoring``), or the module itself at the top."""
    parts = mod.split(".")
    return ".".join(parts[:2])


def cycles(mods, edges) -> list[list[str]]:
    graph = defaultdict(set)
    for a, b, _, _ in edges:
        b = _existing(b, mods)
        if not b or a == b:
            continue
        if mods[a].name == "__init__.py" and b.startswith(a + "."):
            continue  # a package's face importing its own submodules
        graph[a].add(b)
    # Tarjan's strongly connected components
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def upward(mods, edges) -> list[str]:
    bad = []
    for a, b, _, line in edges:
        pa, pb = _part(a), _part(_existing(b, mods) or b)
        if pa in LOWER and FLOORS.get(pb, 6) > 1:
            bad.append(f"{a}:{line} imports {b} (floor {FLOORS.get(pb)} > 1)")
        elif FLOORS.get(pb, 0) > FLOORS.get(pa, 6):
            bad.append(f"{a}:{line} imports {b} (floor {FLOORS.get(pb)} above its own {FLOORS.get(pa)})")
    return bad


def private(mods, edges) -> list[str]:
    bad = []
    for a, b, name, line in edges:
        if a == "brainlid.__main__":
            continue
        target = _existing(b, mods) or b
        own = _subpackage(a, mods)
        # a private module of another subpackage, or a private name from another subpackage
        priv_mod = any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])
        other = _subpackage(target, mods) != own
        if not other:
            continue
        if priv_mod and not target.split(".")[1].startswith("_"):  # ground-floor _atomic/_docs/... are shared helpers
            bad.append(f"{a}:{line} imports the private module {target}")
        elif name and name.startswith("_") and not name.startswith("__"):
            bad.append(f"{a}:{line} imports the private name {target}.{name}")
    return bad


def long_modules(mods) -> list[str]:
    bad = []
    for mod, path in mods.items():
        text = path.read_text()
        n = text.count("\n")
        if n > LONG_MODULE:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if ONE_TOPIC not in doc.lower():
                bad.append(f"{mod}: {n} lines and its docstring does not say it is {ONE_TOPIC}")
    return bad


def _comment_lines(text: str) -> dict[int, str]:
    """Line number -> the comment on it (tokens, so a ``#`` inside a string is no comment)."""
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT}


def silent_function_imports(mods) -> list[str]:
    """Imports inside functions with no reason given: no comment on the import's own lines, on the imports
    just above it (its block) or on a ``#`` line heading that block; comments naming a cycle do not count."""
    bad = []
    for mod, path in mods.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        comments = _comment_lines(text)
        import_lines = {n for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in range(node.lineno, node.end_lineno + 1)}
        seen = set()
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in seen:
                    continue
                seen.add(node.lineno)
                first = node.lineno
                while first - 1 in import_lines:  # the block of imports this one closes
                    first -= 1
                # a comment line heading the block (a comment after code above heads nothing)
                heading = first - 1 in comments and lines[first - 2].lstrip().startswith("#")
                block = range(first - 1 if heading else first, node.end_lineno + 1)
                why = [comments[n] for n in block if n in comments]
                if not why or all("cycle" in c.lower() for c in why):
                    bad.append(f"{mod}:{node.lineno} {lines[node.lineno - 1].strip()!r} does not say why it is inside a function")
    return bad


def test_no_import_cycles():
    mods = modules()
    assert cycles(mods, imports(mods)) == []


def test_lower_floors_do_not_import_upwards():
    mods = modules()
    assert upward(mods, imports(mods)) == []


def test_no_private_imports_across_subpackages():
    mods = modules()
    assert private(mods, imports(mods, through_faces=False)) == []


def test_long_modules_are_one_topic():
    assert long_modules(modules()) == []


def test_function_level_imports_say_why():
    assert silent_function_imports(modules()) == []


def test_the_checker_sees_what_it_must(tmp_path, monkeypatch):
    """The rules catch a planted cycle, an upward import, a private import and a function-level import that does
    not say why (they would pass on an empty graph)."""
    pkg = tmp_path / "brainlid"
    for sub in ("data", "scoring"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("def f():\n    from ..scoring import b\n")
    (pkg / "scoring" / "b.py").write_text("from ..data.a import f\nfrom ..data._hidden import g\n")
    (pkg / "data" / "_hidden.py").write_text("g = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    mods = modules()
    edges = imports(mods)
    assert cycles(mods, edges) == [["brainlid.data.a", "brainlid.scoring.b"]]
    assert any("brainlid.data.a:2 imports brainlid.scoring" in v for v in upward(mods, edges))
    assert private(mods, imports(mods, through_faces=False)) == [
        "brainlid.scoring.b:2 imports the private module brainlid.data._hidden"]
    # a cycle through a package's face is a cycle: scoring.c imports f via data's face, data.a imports scoring.c
    (pkg / "data" / "__init__.py").write_text("from .a import f\n")
    (pkg / "data" / "a.py").write_text("def f():\n    from ..scoring import c\n")
    (pkg / "scoring" / "b.py").write_text("")
    (pkg / "scoring" / "c.py").write_text("from ..data import f\n")
    mods = modules()
    assert cycles(mods, imports(mods)) == [["brainlid.data.a", "brainlid.scoring.c"]]
    # function-level imports: a reason on the line or heading the block passes; none, or a cycle, does not
    (pkg / "scoring" / "d.py").write_text(
        "def ok():\n"
        "    import torch  # heavy: torch\n"
        "    # optional: dask\n"
        "    import dask\n"
        "    from dask import (array,\n"
        "                      bag)\n"
        "\n"
        "\n"
        "def silent():\n"
        "    y = 1  # a comment after code heads nothing\n"
        "    import pandas\n"
        "    x = '# not a comment'; import json\n"
        "\n"
        "\n"
        "def dodges():\n"
        "    from ..data import f  # cycle: data imports scoring\n")
    assert [v for v in silent_function_imports(modules()) if v.startswith("brainlid.scoring.d")] == [
        "brainlid.scoring.d:11 'import pandas' does not say why it is inside a function",
        "brainlid.scoring.d:12 \"x = '# not a comment'; import json\" does not say why it is inside a function",
        "brainlid.scoring.d:16 'from ..data import f  # cycle: data imports scoring' does not say why it is inside "
        "a function"]


if __name__ == "__main__":
    m = modules()
    e = imports(m)
    print(f"{len(m)} modules, {len(e)} internal imports")
    for title, items in (("cycles", cycles(m, e)), ("upward imports", upward(m, e)),
                         ("private imports", private(m, imports(m, through_faces=False))), ("long modules", long_modules(m)),
                         ("function-level imports without a reason", silent_function_imports(m))):
        print(f"\n{title}: {len(items)}")
        for it in items:
            print("  ", it)
