"""Parsing of the size arguments shared by the inspection commands ("224x224x3", "3x1", "5")."""
from __future__ import annotations


def parse_size(text: str, what: str, max_parts: int = 3) -> tuple:
    """'224x224x3' -> (224, 224, 3); '224' -> (224,). Raises ValueError naming ``what``."""
    parts = str(text).lower().replace("*", "x").replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not values or len(values) > max_parts or min(values) < 0:
        example = "224x224x3" if max_parts == 3 else "3x5"
        raise ValueError(f"{what} must be non-negative ints separated by 'x' (e.g. {example}). Received: {text!r}.")
    return values
