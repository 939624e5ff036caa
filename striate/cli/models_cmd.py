"""``striate models``: the model zoo, one line per architecture."""
from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "models", help="list the architectures of the model zoo",
        description="List the architectures that `striate summary MODEL` and `st.models.get(name)` know, "
                    "with their native input size (height x width x channels) and a one-line description.",
    )
    p.set_defaults(command="models")
    return p


def run(args) -> int:
    from .. import models

    infos = [models.info(name) for name in models.list_models()]
    width = max(len(i.name) for i in infos)
    print(f"{'Model'.ljust(width)}  {'Input':>9}  Description")
    for i in infos:
        size = "x".join(map(str, i.input_shape))
        print(f"{i.name.ljust(width)}  {size:>9}  {i.description}")
    print(f"\n{len(infos)} models. Details: striate summary MODEL; in Python: st.models.get(name, num_classes=...).")
    return 0
