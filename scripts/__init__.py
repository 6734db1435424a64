"""Entry points (Hydra and argparse) for collection, training, evaluation and benchmarks.

Each module's ``main()`` is one stage of the ``wm`` command (``wm <stage>``; see worldmodel.cli), and each file
also runs as ``python scripts/<name>.py`` from a checkout.
"""
