#!/usr/bin/env bash
# Installs the Debian packages the toolkit needs, only when missing:
#   Pango/HarfBuzz for WeasyPrint, DejaVu fonts embedded in the PDFs, and with --test
#   poppler-utils (pdftoppm/pdftotext), LibreOffice Calc with python3-uno for the round-trip tests, and the
#   PostgreSQL server binaries the study-store tests start a throwaway server from (tests/store_support.py), and
#   qpdf, whose --check the fillable PDFs must pass (tests/test_fillable.py).
set -euo pipefail
want=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core fonts-dejavu-extra)
if [ "${1:-}" = "--test" ]; then
  want+=(poppler-utils libreoffice-calc-nogui python3-uno postgresql qpdf)
fi
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
