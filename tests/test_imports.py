"""Imports point down the floors of the design (cli > serve > vis > training > io/onnx > models >
summary > data > nn/optim > functional > ops > backend > tensor), and no two modules import each other."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "striate"
FLOORS = {"tensor": 0, "backend": 1, "ops": 2, "functional": 3, "nn": 4, "optim": 4, "data": 5, "summary": 6,
          "models": 7, "io": 8, "onnx": 8, "training": 9, "vis": 10, "distributed": 10, "serve": 11, "cli": 12}
# The two imports that still point up, each for a reason: Tensor's operators (a + b) are the primitive
# ops, imported once Tensor exists; a zoo model's weights= argument reads its file with striate.io.
KNOWN_UP = {("striate.tensor", "striate.ops.primitives"), ("striate.models._common", "striate.io")}


def _module(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path.name == "__init__.py"


def _is_module(name):
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports():
    """{module: {imported module, ...}} for every module of striate, module-level and inside functions."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name, is_package = _module(path)
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` imports the module x; `from .m import f` the module m
                targets |= {f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        found[name] = {t for t in targets if t.startswith("striate")}
    return found


def _floor(module):
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_imports_point_down():
    up = sorted((src, dst) for src, targets in _imports().items() for dst in targets
                if _floor(src) is not None and _floor(dst) is not None and _floor(dst) > _floor(src))
    assert [(s, d) for s, d in up if (s, d) not in KNOWN_UP] == [], up


def test_no_two_modules_import_each_other():
    imports = _imports()
    packages = {m for m in imports if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    pairs = sorted((a, b) for a in imports for b in imports[a]
                   if a < b and a in imports.get(b, ()) and not {a, b} & packages)
    assert pairs == [("striate.ops.primitives", "striate.tensor")], pairs


def test_the_engine_takes_its_backward_scope_from_the_thread_module():
    import striate.backend.threads as threads
    import striate.tensor as tensor
    assert tensor._backward["scope"] is threads.blas_scope
