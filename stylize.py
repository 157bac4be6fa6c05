#!/usr/bin/env python3
"""Same as `fastnst stylize`: see `python stylize.py --help`."""

from fastnst.cli import run_subcommand

if __name__ == "__main__":
    run_subcommand("stylize")
