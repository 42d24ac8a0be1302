#!/usr/bin/env bash
# Creates .venv from Debian's python3 (3.11) so the Debian-only bindings
# python3-guestfs and python3-hivex import, then installs the project.
# (The PyPI package named "hivex" is unrelated: never pip-install it.)
set -euo pipefail
venv=${1:-.venv}
extras=${2:-test}
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[${extras}]"
"$venv/bin/python" -c "import guestfs, hivex, imageport, prefect" \
  || { echo "venv check failed: guestfs/hivex/imageport/prefect do not all import" >&2; exit 1; }
