"""Boxes for localisation and detection: NumPy arrays in, NumPy arrays out.

Boxes inside striate are ``(x0, y0, x1, y1)`` in input pixels (xyxy, float); the converters give
COCO's ``[x, y, w, h]`` and the centre form ``(cx, cy, w, h)`` that YOLO normalises. These
functions hold no parameters and record no gradient: the models' losses act on the encoded
offsets (:func:`encode_boxes`), and the post-processing (:func:`decode_boxes`, :func:`nms`) runs
on plain arrays.

    import striate as st
    st.detection.box_iou(a, b)                  # (N, 4), (M, 4) -> (N, M)
    st.detection.nms(boxes, scores, 0.5)        # kept indices, highest score first
    st.detection.mean_average_precision(preds, truths)   # COCO mAP, mAP50, per-class AP
    st.detection.segmentation_scores(cm)        # mIoU, pixel accuracy, per-class IoU
"""
from .boxes import (box_area, box_iou, clip_boxes, cxcywh_to_xyxy, decode_boxes, encode_boxes, xywh_to_xyxy,
                    xyxy_to_cxcywh, xyxy_to_xywh)
from .metrics import COCO_IOU_THRESHOLDS, localisation_scores, mean_average_precision, paired_box_iou
from .nms import batched_nms, nms
from .segmentation_metrics import IGNORE_INDEX, segmentation_confusion_matrix, segmentation_scores

__all__ = [
    "box_area", "box_iou", "clip_boxes", "nms", "batched_nms", "encode_boxes", "decode_boxes",
    "xyxy_to_xywh", "xywh_to_xyxy", "xyxy_to_cxcywh", "cxcywh_to_xyxy",
    "mean_average_precision", "COCO_IOU_THRESHOLDS", "localisation_scores", "paired_box_iou",
    "segmentation_confusion_matrix", "segmentation_scores", "IGNORE_INDEX",
]
