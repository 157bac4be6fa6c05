#!/usr/bin/env python3
"""Same as `fastnst stylize`: see `python stylize.py --help`."""

from fastnst.__main__ import run

if __name__ == "__main__":
    run("stylize")
