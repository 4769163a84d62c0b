"""Beyond one process: tf.distribute strategies for training (`distribute`) and Ray Data actor
pools for batch prediction (`ray_engine`)."""
