"""Weights in: PyTorch state dicts (as arrays: no torch import) and ``.safetensors`` files.

    st.io.load_torch_state_dict(model, state_dict)        # torchvision key names and layouts
    st.io.load_safetensors("resnet18.safetensors")        # -> {name: ndarray}
    st.models.resnet18(weights="resnet18.safetensors")    # the same, at build time
"""
from .torch_weights import convert_torch_state_dict, load_pretrained, load_safetensors, load_torch_state_dict

__all__ = ["load_torch_state_dict", "convert_torch_state_dict", "load_safetensors", "load_pretrained"]
