"""Training: pretraining and predictor loops on one shared step loop (loop.py), DDP plumbing, logging, schedules."""
