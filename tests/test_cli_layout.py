"""Commands are thin: each parses its arguments and calls the library. No command imports another
command, nor a private name of the library; what two commands share lives in the library (or in the
command line's own helper modules, common.py and train_config.py)."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLI = ROOT / "striate" / "cli"

# The picture reading that visualize still borrows from predict; both imports leave with the one
# image-reading module of the data package.
PENDING: set = set()


def _imports(path):
    """``(module, name)`` of every ``from ... import name`` in the file, modules relative to striate/cli."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = ("." * node.level + (node.module or ""))
            for alias in node.names:
                yield module, alias.name


def _relative_to_cli(module: str) -> str:
    if module.startswith(".."):
        return module[2:]
    return module[1:] if module.startswith(".") else module


def test_no_command_imports_another_command():
    found = set()
    for path in sorted(CLI.glob("*_cmd.py")):
        for module, name in _imports(path):
            target = _relative_to_cli(module)
            if module.startswith(".") and not module.startswith("..") and target.endswith("_cmd"):
                found.add((path.stem, target, name))
    assert found <= PENDING, sorted(found - PENDING)


def test_no_command_reaches_into_private_library_names():
    found = set()
    for path in sorted(CLI.glob("*.py")):
        for module, name in _imports(path):
            if not module.startswith(".."):
                continue  # the command line's own modules (main, common, _shapes, ...)
            target = _relative_to_cli(module)
            private = name.startswith("_") and not name.endswith("__")   # __version__ is public
            if private or any(part.startswith("_") for part in target.split(".") if part):
                found.add((path.stem, target, name))
    assert found <= PENDING, sorted(found - PENDING)
    assert ("visualize_cmd", "training.loop", "_batch_input") in found or not PENDING  # the check sees them


def test_the_continued_schedule_lives_with_the_schedules():
    import striate as st

    assert st.optim.ContinuedLR.__module__ == "striate.optim.schedules"
    source = (CLI / "train_cmd.py").read_text()
    assert "class " not in source   # a command defines no classes of the library's kind


def test_train_and_finetune_are_one_library_call_each():
    """The commands parse and print; the run (data, model, loop, files) is the library's."""
    for command, call in (("train_cmd", "train_run"), ("finetune_cmd", "finetune_run")):
        imported = {name for _, name in _imports(CLI / f"{command}.py")}
        assert call in imported, command
        assert not imported & {"fit", "evaluate", "finetune", "save_weights", "save_checkpoint", "DataLoader",
                               "RunDir", "build_optimizer", "build_schedule", "validation_split"}, command
