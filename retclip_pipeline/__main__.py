"""python -m retclip_pipeline: the command line (cli/)."""

from .cli import main, run_main

__all__ = ["main", "run_main"]

if __name__ == "__main__":
    run_main()
