"""What `seglab train` does after each epoch, off the training thread: the run folder's
checkpoint, history, curves, samples and previews (`checkpoint`), and the W&B and TensorBoard
mirrors (`trackers`)."""
