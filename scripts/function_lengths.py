"""Lines of code of every function in a package, longest first (docstrings, comments and blank
lines excluded; a nested function counts in its own right and inside its parent).

    python scripts/function_lengths.py striate        # the 10 longest
"""
from __future__ import annotations

import ast
import pathlib
import sys


def function_lengths(root) -> list[tuple[int, str]]:
    """``[(lines of code, "path:line name"), ...]`` of every function under ``root``, longest first."""
    found = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]  # the docstring
            if not body:
                continue
            code = [line.strip() for line in lines[body[0].lineno - 1:node.end_lineno]]
            found.append((sum(1 for line in code if line and not line.startswith("#")),
                          f"{path}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


if __name__ == "__main__":
    for count, where in function_lengths(sys.argv[1] if len(sys.argv) > 1 else "striate")[:10]:
        print(f"{count:4d}  {where}")
