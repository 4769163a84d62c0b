"""The base layer: error types, progress bars and stage timings, TensorFlow's start-up noise,
precision policies, and the XLA and TensorFlow-kernel helpers the models, losses and metrics use."""
