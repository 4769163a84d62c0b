"""Running a model: `runtimes` (a Predictor on Keras, ONNX Runtime, LiteRT or a SavedModel),
`tiling` (sliding windows and TTA) and `chunks` (a chunk of files in, masks and overlays out: what
the local and Ray engines both run)."""
