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
# The Nutanix SDKs' pins contradict Prefect's (see pyproject.toml, extra "nutanix"): their exact ranges, no deps.
nutanix=$("$venv/bin/python" -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["nutanix"]))')
# shellcheck disable=SC2086 # one word per requirement
"$venv/bin/python" -m pip install -q --no-deps $nutanix
"$venv/bin/python" -c "import guestfs, hivex, imageport, prefect, ntnx_vmm_py_client, ntnx_prism_py_client" \
  || { echo "venv check failed: guestfs/hivex/imageport/prefect/ntnx SDKs do not all import" >&2; exit 1; }
