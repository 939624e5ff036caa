"""The conv epilogue (bias, or a fused eval-mode batch norm and ReLU) lives in
:mod:`striate.backend.epilogue`, beneath the ops, since the reference conv and its fast strategies
both apply it; its name stays here for the ops."""
from ..backend.epilogue import Epilogue

__all__ = ["Epilogue"]
