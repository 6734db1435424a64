"""The library's Hydra configs (yaml only; this file makes the folder ship inside the wheel as package data).

The scripts compose them from this folder's path on disk (see scripts.common.hydra_main), so a user's own
``configs/`` folder in the working directory never replaces them; add your own with ``--config-dir``.
"""
