"""``python -m ballistics``: the ``ballistics`` command (the same click group)."""

from ballistics.cli import main

if __name__ == "__main__":
    main(prog_name="ballistics")
