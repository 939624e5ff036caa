"""Reductions shared by ops: they live in :mod:`striate.backend.reductions`, beneath the ops, since the
fast strategies use them too; their names stay here for the ops."""
from ..backend.reductions import channel_sum

__all__ = ["channel_sum"]
