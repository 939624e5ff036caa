"""ONNX export and import: ``st.onnx.export(model, path, input_shape)``, ``st.onnx.load(path)``.

Needs the ``onnx`` package (``pip install 'striate[onnx]'``), imported only when these functions run.
"""
from .export import EXPORTERS, export, to_onnx
from .graph import GraphModule
from .load import IMPORTERS, from_onnx, load

__all__ = ["export", "load", "to_onnx", "from_onnx", "GraphModule", "EXPORTERS", "IMPORTERS"]
