"""See what a CNN learned: filters, feature maps, where it looks, what excites a unit.

The maps are NumPy arrays computed with striate's own forward and backward (through forward hooks
on the model's layers); drawing them is separate (:mod:`striate.vis.draw`, Pillow and matplotlib
from the ``striate[viz]`` extra, imported only when drawing).

* :func:`filter_grid` — a conv layer's kernels as tiles (Krizhevsky et al. 2012, fig. 3).
* :func:`activations`, :func:`activation_grid` — every layer's output for one image.
* :func:`saliency` — input-gradient maps: ``'grad'`` (Simonyan et al. 2014), ``'smoothgrad'``
  (Smilkov et al. 2017), ``'grad_x_input'``; :func:`input_gradient` is the raw gradient.
* :func:`grad_cam` — class activation map of a layer (Selvaraju et al. 2017).
* :func:`occlusion` — probability drop when a window is covered (Zeiler & Fergus 2014, 4.2).
* :func:`top_patches` — the data set's patches that excite a channel most, cropped to the unit's
  receptive field; :func:`maximize_activation` — the input a channel "wants".
* :func:`conv_animation`, :func:`pool_animation` — conv arithmetic frames (Dumoulin & Visin 2016).
* :func:`overlay`, :func:`tile`, :func:`normalize` — drawing helpers.

Layer names are those of ``st.summary`` / ``striate summary``. Every function takes one image,
``(h, w, c)`` or a batch of one, preprocessed as the model was trained, in float32 or float64.
"""
from .animate import (Animation, Frame, conv_animation, draw_frames, frame_images, pool_animation,
                      save_animation, save_gif)
from .attribution import (SALIENCY_METHODS, default_cam_layer, grad_cam, input_gradient, occlusion,
                          predicted_class, saliency)
from .draw import overlay
from .filters import activation_grid, activations, default_activation_layers, filter_grid, first_conv_name
from .grid import grid_shape, normalize, resize_bilinear, tile, upsample_nearest
from .patches import TopPatches, channel_activation, layer_field, maximize_activation, top_patches

__all__ = ["filter_grid", "activations", "activation_grid", "default_activation_layers", "first_conv_name",
           "saliency", "input_gradient", "grad_cam", "default_cam_layer", "occlusion", "predicted_class",
           "top_patches", "TopPatches", "layer_field", "maximize_activation", "channel_activation",
           "conv_animation", "pool_animation", "draw_frames", "save_gif", "Animation", "Frame",
           "frame_images", "save_animation",
           "overlay", "tile", "normalize", "grid_shape", "resize_bilinear", "upsample_nearest",
           "SALIENCY_METHODS"]
