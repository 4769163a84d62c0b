"""Instance segmentation with a pretrained TF2 detection-zoo Mask R-CNN: per-object boxes, labels,
scores and masks, drawn on the image and written as COCO results; COCO evaluation."""
