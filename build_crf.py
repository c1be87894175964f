#!/usr/bin/env python3
"""Build case report forms (PDF, Excel) from a study definition. See `python build_crf.py --help`."""
from crf.cli import build

if __name__ == "__main__":
    build()
