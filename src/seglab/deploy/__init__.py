"""A trained model made ready to run elsewhere: the float32, any-size copy export writes and the
Keras predictor uses for other sizes (`deployable`), and the rewrites that make an exported graph
faster while computing the same (`graph_rewrites`). Unlike `seglab.models`, these use TensorFlow
ops directly where the exported graph needs them (each place says why)."""
