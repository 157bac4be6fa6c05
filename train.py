#!/usr/bin/env python3
"""Same as `fastnst train`: see `python train.py --help`."""

from fastnst.__main__ import run

if __name__ == "__main__":
    run("train")
