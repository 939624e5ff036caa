"""The code's layout, checked on the source itself."""
import ast
import importlib.util
import pathlib
import re

import numpy as np
import pytest

import striate as st
import striate.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "striate"


def _function_lengths():
    spec = importlib.util.spec_from_file_location("function_lengths", ROOT / "scripts" / "function_lengths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.function_lengths(PACKAGE)


def test_the_longest_function_is_under_80_lines_of_code():
    longest = _function_lengths()[0]
    assert longest[0] < 80, f"{longest[1]} has {longest[0]} lines of code"


def test_function_lengths_count_code_lines_only(tmp_path):
    # the measure itself: a docstring, comments and blank lines do not count
    (tmp_path / "m.py").write_text('def f():\n    """Doc\n    string."""\n    # comment\n\n    a = 1\n    return a\n')
    spec = importlib.util.spec_from_file_location("function_lengths", ROOT / "scripts" / "function_lengths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.function_lengths(tmp_path)[0][0] == 2


PLUMBING = {"threading", "queue", "threads", "scratch", "compiled", "jit", "numba", "threadpoolctl"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "ops").glob("*.py")), ids=lambda p: p.name)
def test_op_files_hold_no_thread_or_cache_plumbing(path):
    # an op may hand its work to its strategy in striate.backend (one import of that family's module),
    # but never reaches the thread pool, the scratch buffers or the compiled loops itself
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.name for a in node.names} | {(node.module or "").split(".")[-1]}
        elif isinstance(node, ast.Attribute) and node.attr in ("map_parts", "split", "run_split", "scratch"):
            names.add(node.attr)
    assert not names & (PLUMBING | {"map_parts", "run_split"}), f"{path.name} uses {names & PLUMBING}"


def test_each_compiled_loop_is_at_module_level_with_a_docstring():
    tree = ast.parse((PACKAGE / "backend" / "jit.py").read_text())
    loops = [n for n in tree.body if isinstance(n, ast.FunctionDef) and any(
        isinstance(d, ast.Name) and d.id in ("jit", "jitr") for d in n.decorator_list)]
    assert len(loops) >= 9
    for fn in loops:
        assert ast.get_docstring(fn), f"{fn.name} has no docstring"
        assert not [n for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn]


STOPWATCH = re.compile(r"\d(\.\d+)? ?(ms|us|µs|img/s)\b|\d(\.\d+)?x (faster|slower)|measured")


SPEED_CODE = sorted([*(PACKAGE / "ops").glob("*.py"), *(PACKAGE / "backend").glob("*.py"), *(PACKAGE / "nn").glob("*.py"),
                     PACKAGE / "tensor.py", PACKAGE / "functional.py"])


@pytest.mark.parametrize("path", SPEED_CODE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_comments_give_reasons_not_stopwatch_readings(path):
    hits = [line for line in path.read_text().splitlines() if STOPWATCH.search(line)]
    assert not hits, f"timings belong in benchmarks/notes.md: {hits}"


def test_op_classes_are_not_named_like_layers():
    layers = {name.lower() for name in dir(st.nn) if isinstance(getattr(st.nn, name), type)}
    functions = [name for name in dir(st.ops) if isinstance(getattr(st.ops, name), type)
                 and issubclass(getattr(st.ops, name), st.Function)]
    assert functions and all(name.endswith("Op") for name in functions), functions
    assert not {name.lower() for name in functions} & layers


def test_geometry_error_carries_the_sizes():
    with pytest.raises(st.GeometryError) as info:
        F.conv2d(np.zeros((1, 4, 4, 1), np.float32), np.zeros((5, 5, 1, 2), np.float32))
    e = info.value
    assert isinstance(e, ValueError)
    assert (e.op, e.in_hw, e.kernel, e.out_hw) == ("conv2d", (4, 4), (5, 5), (0, 0))
    assert "zero or negative" in str(e)


def test_unhashable_settings_are_validated_not_cached():
    # a dict is not a valid padding: the proper message, from the plain (uncached) check
    with pytest.raises(TypeError, match="padding must be an int or a pair of ints"):
        F.conv2d(np.zeros((1, 4, 4, 1), np.float32), np.zeros((3, 3, 1, 2), np.float32), padding={"a": 1})
