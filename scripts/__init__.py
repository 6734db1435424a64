"""Entry points (Hydra) for collection, training, evaluation and benchmarks."""
