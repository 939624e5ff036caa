"""The documentation: tutorials stored without outputs and listed, no paths of one machine in what
users read, the README's commands the ones CI runs, the recipe table the recipes of the code.

The tutorials themselves run as tests through nbmake (``testpaths`` in pyproject.toml); the site
builds with ``mkdocs build --strict`` (``.ci/run``)."""
import glob
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = sorted(glob.glob(os.path.join(ROOT, "docs", "tutorials", "*.ipynb")))
# a relative path into a data folder beside the checkout, the way one machine keeps its copy
MACHINE_PATH = re.compile(r"\.\./shared/|shared/data/")


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 9, [os.path.basename(t) for t in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=os.path.basename)
def test_tutorial_is_stored_without_outputs(path):
    nb = json.loads(read(path))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{os.path.basename(path)}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", TUTORIALS, ids=os.path.basename)
def test_tutorial_is_in_the_site_and_its_index(path):
    name = os.path.basename(path)
    assert f"tutorials/{name}" in read("mkdocs.yml"), f"{name} is missing from mkdocs.yml's nav"
    assert f"({name})" in read("docs", "tutorials", "index.md"), f"{name} is missing from docs/tutorials/index.md"


def test_no_machine_paths_in_readme_docs_and_tutorials():
    files = ["README.md"] + glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True) + TUTORIALS
    found = [os.path.relpath(f, ROOT) for f in files if MACHINE_PATH.search(read(f))]
    assert not found, f"these name a data path of one machine (use --data-dir PATH or the download): {found}"


def test_no_machine_paths_in_help_texts():
    from striate.cli.main import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    texts = {"striate": parser.format_help()}
    texts.update({name: sub.choices[name].format_help() for name in COMMANDS})
    found = [name for name, text in texts.items() if MACHINE_PATH.search(text)]
    assert not found, f"`striate <cmd> --help` names a data path of one machine: {found}"


def test_readme_gives_the_commands_ci_runs():
    readme, ci = read("README.md"), read(".ci", "run")
    assert "python -m pytest -q" in readme and re.search(r"^python -m pytest -q$", ci, re.M)
    assert 'pip install -e ".[cli]" && striate train' in readme
    assert "mkdocs build --strict" in readme and "mkdocs build --strict" in ci
    assert len(readme.splitlines()) <= 200


def test_recipe_table_matches_the_recipes():
    from striate.cli.common import RECIPES

    rows = {}
    for line in read("docs", "guides", "training.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in RECIPES:
            rows[cells[0]] = cells
    assert set(rows) == set(RECIPES), f"docs/guides/training.md lists {sorted(rows)}, the code {sorted(RECIPES)}"
    keys = ("model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup",
            "augment", "crop_padding", "val_split")
    for name, recipe in RECIPES.items():
        assert rows[name][1:] == [str(recipe[k]) for k in keys], f"recipe {name!r} differs from docs/guides/training.md"


def test_train_help_shows_every_recipe():
    from striate.cli.common import RECIPES
    from striate.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    lines = sub.choices["train"].format_help().splitlines()
    for name, r in RECIPES.items():
        row = next((ln.split() for ln in lines if ln.split()[:1] == [name]), None)
        assert row is not None, f"striate train --help has no line for the recipe {name!r}"
        assert row[1:7] == [r["model"], str(r["epochs"]), str(r["batch_size"]), r["optimizer"], str(r["lr"]),
                            str(r["weight_decay"])], row
