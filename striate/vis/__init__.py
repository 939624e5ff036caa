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
* :func:`deconvnet` — one unit's activation projected back to pixels (Zeiler & Fergus 2014, 2.1);
  :func:`guided_backprop` — the input gradient through guided ReLUs (Springenberg et al. 2015).
* :func:`top_patches` — the data set's patches that excite a channel most, cropped to the unit's
  receptive field; :func:`maximize_activation` — the input a channel "wants".
* :func:`explain_unit` — the arithmetic of one unit of any layer, with the real numbers
  (:func:`record_forward` keeps one image's forward pass to explain many units);
  :func:`explain_gradient` — what backprop sends to every layer and to one unit's weights.
* :func:`conv_animation`, :func:`pool_animation` — conv arithmetic frames (Dumoulin & Visin 2016).
* :func:`gradient_flow` — per-layer gradient norms and activation statistics of a training step.
* :func:`lr_find_figure` — loss against learning rate of :func:`striate.training.lr_find`.
* :func:`tune_history_figure`, :func:`importances_figure` — a search's trials and its parameter
  importances (:func:`striate.training.tune`).
* :func:`draw_boxes`, :func:`draw_mask` — a detector's boxes or a segmenter's mask drawn over the picture
  (:mod:`striate.vis.dense`, what ``striate predict --out`` saves).
* :func:`overlay`, :func:`tile`, :func:`normalize` — drawing helpers.
* :func:`filters_figure`, :func:`activations_figure`, :func:`saliency_figure`, :func:`grad_cam_figure`,
  :func:`occlusion_figure`, :func:`top_patches_figure`, :func:`maximize_figure`,
  :func:`deconvnet_figure`, :func:`guided_backprop_figure` — the captioned
  pictures of ``striate visualize`` (:mod:`striate.vis.figures`); :func:`save_figure` writes one.

Layer names are those of ``st.summary`` / ``striate summary``. Every function takes one image,
``(h, w, c)`` or a batch of one, preprocessed as the model was trained, in float32 or float64.
"""
from .animate import (Animation, Frame, conv_animation, draw_frames, frame_images, pool_animation,
                      save_animation, save_gif)
from .attribution import (SALIENCY_METHODS, default_cam_layer, grad_cam, input_gradient, occlusion,
                          predicted_class, saliency)
from .backprop import BackwardRecord, explain_gradient, record_backward
from .deconvnet import deconvnet, deconvnet_unit
from .dense import draw_boxes, draw_mask
from .draw import overlay
from .explain import ForwardRecord, explain_unit, format_explanation, record_forward, softmax_terms, to_json
from .figures import (activations_figure, class_probabilities, conv_layer, deconvnet_figure, filters_figure,
                      grad_cam_figure, guided_backprop_figure, maximize_figure, occlusion_figure, saliency_figure,
                      save_figure, signed_image, top_patches_figure)
from .filters import activation_grid, activations, default_activation_layers, filter_grid, first_conv_name
from ._model import find_layer, inspecting
from .gradient_flow import GradientFlow, gradient_flow, gradient_flow_figure, save_gradient_flow_plot
from .lr_plot import lr_find_figure, save_lr_find_plot
from .tune_plots import importances_figure, tune_history_figure
from .guided import guided_backprop
from .grid import grid_shape, normalize, resize_bilinear, tile, upsample_nearest
from .patches import TopPatches, channel_activation, layer_field, maximize_activation, top_patches

__all__ = ["filter_grid", "activations", "activation_grid", "default_activation_layers", "first_conv_name", "saliency",
           "input_gradient", "grad_cam", "default_cam_layer", "occlusion", "predicted_class", "top_patches",
           "TopPatches", "layer_field", "maximize_activation", "channel_activation", "conv_animation",
           "pool_animation", "draw_frames", "save_gif", "Animation", "Frame", "overlay", "tile", "normalize",
           "grid_shape", "resize_bilinear", "upsample_nearest", "SALIENCY_METHODS", "explain_unit", "record_forward",
           "ForwardRecord", "format_explanation", "softmax_terms", "to_json", "explain_gradient", "record_backward",
           "BackwardRecord", "find_layer", "inspecting", "lr_find_figure", "save_lr_find_plot", "gradient_flow",
           "GradientFlow", "gradient_flow_figure", "save_gradient_flow_plot", "filters_figure", "activations_figure",
           "saliency_figure", "grad_cam_figure", "occlusion_figure", "top_patches_figure", "maximize_figure",
           "save_figure", "conv_layer", "class_probabilities", "tune_history_figure", "importances_figure",
           "frame_images", "save_animation", "deconvnet", "deconvnet_unit", "guided_backprop", "deconvnet_figure",
           "guided_backprop_figure", "signed_image", "draw_boxes", "draw_mask"]
