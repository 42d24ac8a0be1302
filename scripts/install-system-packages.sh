#!/usr/bin/env bash
# Installs the Debian 12 packages imageport needs, idempotently.
#   scripts/install-system-packages.sh runtime   what `make demo` needs
#   scripts/install-system-packages.sh test      + the real services the test suite starts
# Only missing packages are installed, so a second run costs a dpkg query.
set -euo pipefail
profile=${1:-runtime}

runtime=(python3 python3-venv python3-dev gcc qemu-utils ntfs-3g gdisk
         python3-guestfs libguestfs-tools linux-image-amd64
         python3-hivex libhivex-bin curl ca-certificates)
test_extra=(samba smbclient golang-go golang-github-vmware-govmomi-dev nodejs npm
            python3-libvhdi time chromium chromium-driver postgresql iproute2)
# libvhdi: a second VHD/VHDX judge; GNU time: peak RSS in bench/; chromium + its driver: the UI browser test
# postgresql: the scale-out test's Prefect server database; iproute2: its worker hosts (network namespaces, veths)

wanted=("${runtime[@]}")
[ "$profile" = test ] && wanted+=("${test_extra[@]}")

missing=()
for pkg in "${wanted[@]}"; do
  # node/npm may come from another repository (e.g. nodesource); accept any working install.
  if [ "$pkg" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$pkg" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${profile})"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps libguestfs from pulling in a desktop's worth of packages.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
