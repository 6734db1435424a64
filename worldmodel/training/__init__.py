"""Training loops, checkpoints and logging shared by pretraining and predictor training."""
