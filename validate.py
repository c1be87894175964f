#!/usr/bin/env python3
"""Check returned CRFs against the study definition and report. See `python validate.py --help`."""
from crf.cli import validate_main

if __name__ == "__main__":
    validate_main()
