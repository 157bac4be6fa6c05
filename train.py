#!/usr/bin/env python3
"""Same as `fastnst train`: see `python train.py --help`."""

from fastnst.cli import run_subcommand

if __name__ == "__main__":
    run_subcommand("train")
