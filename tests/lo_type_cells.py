"""Driver for LibreOffice (run with Debian's /usr/bin/python3, which has python3-uno): open a workbook in
headless soffice, type text into cells as a site coordinator would, save as .xlsx.

    /usr/bin/python3 tests/lo_type_cells.py IN.xlsx OUT.xlsx '{"Queries!P2": "text", ...}'
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import uno
from com.sun.star.beans import PropertyValue


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main(src, dst, cells):
    profile = tempfile.mkdtemp(prefix="lo-profile-")
    pipe = f"ecrf{os.getpid()}"
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    proc = subprocess.Popen([soffice, "--headless", "--invisible", "--nologo", "--norestore", "--nodefault",
                             f"-env:UserInstallation=file://{profile}", f"--accept=pipe,name={pipe};urp;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        ctx = None
        for _ in range(300):
            try:
                ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except Exception:
                time.sleep(0.1)
        if ctx is None:
            raise SystemExit("soffice did not start")
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(src)), "_blank", 0, (prop("Hidden", True),))
        for ref, text in cells.items():
            sheet_name, cell = ref.split("!")
            doc.Sheets.getByName(sheet_name).getCellRangeByName(cell).setString(text)
        doc.storeToURL(uno.systemPathToFileUrl(os.path.abspath(dst)), (prop("FilterName", "Calc Office Open XML"),))
        doc.close(True)
        try:
            desktop.terminate()
        except Exception:  # the bridge closes as soffice exits
            pass
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
