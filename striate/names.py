"""Names a user types: one spelling rule and one "did you mean" for models, data sets, layers and options.

A name is matched without regard to case, ``-``, ``_``, ``.`` and spaces (:func:`name_key`): ``"ResNet-20"``
means ``resnet20`` and ``"Fashion MNIST"`` means ``fashion_mnist``. An unknown name gets the closest
known one as a hint (:func:`did_you_mean`, difflib's similarity ratio >= 0.6 on the spelling-free forms).
This module imports only the standard library, so every floor of striate may use it.

Example:
    >>> match("LeNet-5", ["lenet5", "alexnet"]), did_you_mean("alexnt", ["lenet5", "alexnet"])
    ('lenet5', " Did you mean 'alexnet'?")
"""
from __future__ import annotations

import difflib

CUTOFF = 0.6   # difflib's default: close enough that the hint helps more often than it misleads


def name_key(name) -> str:
    """The spelling-free form of a name: lower case, without ``-``, ``_``, ``.`` and spaces."""
    return "".join(ch for ch in str(name).lower() if ch not in "-_. ")


def match(value, choices) -> str | None:
    """The entry of ``choices`` that ``value`` means under :func:`name_key`, or None."""
    key = name_key(value)
    return next((c for c in choices if name_key(c) == key), None)


def closest(value, choices, exact_spelling: bool = False) -> str | None:
    """The entry of ``choices`` nearest to ``value``, or None when none is close.

    Args:
        value: what the user typed.
        choices: the known names.
        exact_spelling: compare the names as they are (layer names such as ``features.3``) instead of
            their spelling-free forms.
    """
    choices = [str(c) for c in choices]
    form = str if exact_spelling else name_key
    by_form = {}
    for c in choices:
        by_form.setdefault(form(c), c)
    found = difflib.get_close_matches(form(value), list(by_form), n=1, cutoff=CUTOFF)
    return by_form[found[0]] if found else None


def did_you_mean(value, choices, exact_spelling: bool = False) -> str:
    """``" Did you mean 'x'?"`` for the closest choice (see :func:`closest`), else ``""``.

    Meant to be put inside a message: ``f"Unknown model {name!r}.{did_you_mean(name, names)} ..."``.
    """
    near = closest(value, choices, exact_spelling)
    return f" Did you mean {near!r}?" if near is not None else ""
