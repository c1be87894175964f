"""Drive LibreOffice Calc through UNO as a site coordinator would: insert rows and columns, type, copy a sheet, save.

Run with Debian's /usr/bin/python3 (python3-uno), not the project's venv:

    /usr/bin/python3 tests/lo_driver.py IN.xlsx OUT.xlsx ACTIONS.json

ACTIONS.json is a list of steps, applied in order:
    {"do": "insert_rows", "sheet": "Adverse events", "before": 10, "count": 1}   (rows from 1, like Calc shows them)
    {"do": "insert_columns", "sheet": "V2 Day 14", "before": "C", "count": 1}
    {"do": "type", "sheet": "Adverse events", "cell": "B10", "value": "Nausea"}  (a number when value is a number)
    {"do": "copy_sheet", "sheet": "V3 Day 28", "as": "V3 Day 28 (2)"}
    {"do": "unprotect", "sheet": "V2 Day 14"}   (the study's sheets are protected without a password)
It starts its own headless soffice (own profile folder, own pipe), so several runs never share one office.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import uno  # type: ignore[import-not-found]
from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]
from com.sun.star.connection import NoConnectException  # type: ignore[import-not-found]


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def column_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def connect(pipe: str, proc: subprocess.Popen, timeout: float = 90.0):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
        except NoConnectException:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"soffice did not accept a connection (exit {proc.poll()})")
            time.sleep(0.3)


def apply(doc, step: dict) -> None:
    sheets = doc.Sheets
    what = step["do"]
    if what == "copy_sheet":
        sheets.copyByName(step["sheet"], step["as"], sheets.Count)
        return
    sheet = sheets.getByName(step["sheet"])
    if what == "unprotect":
        sheet.unprotect("")
    elif what == "insert_rows":
        sheet.Rows.insertByIndex(int(step["before"]) - 1, int(step.get("count", 1)))
    elif what == "insert_columns":
        sheet.Columns.insertByIndex(column_index(step["before"]), int(step.get("count", 1)))
    elif what == "type":
        cell = sheet.getCellRangeByName(step["cell"])
        value = step["value"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cell.setValue(value)
        else:
            cell.setFormula(str(value))  # as typed into the cell: "2025-03-10" becomes a date, like the keyboard
    else:
        raise SystemExit(f"unknown step {what!r}")


def main(source: str, target: str, actions_file: str) -> None:
    with open(actions_file, encoding="utf-8") as handle:
        steps = json.load(handle)
    profile = tempfile.mkdtemp(prefix="lo-uno-profile-")
    pipe = f"openecrf_{uuid.uuid4().hex}"
    proc = subprocess.Popen(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--invisible",
                             "--norestore", "--nologo", "--nodefault", f"--accept=pipe,name={pipe};urp;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx = connect(pipe, proc)
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(source)), "_blank", 0,
                                           (prop("Hidden", True),))
        for step in steps:
            apply(doc, step)
        doc.storeToURL(uno.systemPathToFileUrl(os.path.abspath(target)),
                       (prop("FilterName", "Calc MS Excel 2007 XML"), prop("Overwrite", True)))
        doc.close(True)
        try:
            desktop.terminate()
        except Exception:  # the bridge drops as the office quits
            pass
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
