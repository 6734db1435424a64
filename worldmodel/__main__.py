"""``python -m worldmodel <stage> [arguments]``: the same as the ``wm`` command (see worldmodel.cli)."""

from worldmodel.cli import main

if __name__ == "__main__":
    main()
