"""Seeing a network's shape: per-layer summaries, receptive fields, conv arithmetic.

* :func:`summary` — ``st.summary(model, (224, 224, 3))``: output shapes, parameters, MACs,
  activation memory, receptive field and jump of every layer.
* :func:`receptive_field` — the field of a chain of (kernel, stride, dilation) layers.
* :func:`striate.summary.calc.conv_arithmetic` — output sizes, pads and fields of a chain,
  explaining impossible settings (the ``striate calc`` command).

Place in the house: above ``nn`` and ``ops`` (it inspects modules and ops), below ``models`` (the
model zoo uses its tracer to name the layer where a too-small input fails) and ``cli``.
"""
from .calc import ConvArithmetic, LayerGeometry, conv_arithmetic
from .receptive_field import ReceptiveField, receptive_field, rf_step, rf_union
from .summary import LayerRow, ModelSummary, summary
from .trace import trace_forward

__all__ = ["summary", "ModelSummary", "LayerRow", "receptive_field", "ReceptiveField", "rf_step", "rf_union",
           "conv_arithmetic", "ConvArithmetic", "LayerGeometry", "trace_forward"]

# ``striate/__init__.py`` binds ``st.summary`` to the function (``st.summary(model, shape)``), which
# hides this package behind it as an attribute. Give the function the package's public names so that
# ``st.summary.receptive_field(...)`` and ``st.summary.calc.conv_arithmetic(...)`` work as well.
from . import calc  # noqa: E402

for _name in ("calc", *__all__):
    setattr(summary, _name, globals()[_name])
del _name
