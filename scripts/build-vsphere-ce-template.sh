#!/bin/sh
# Turn a fresh Debian 12 / Ubuntu 22.04+ VM into the vSphere compositing-engine template
# (docs/vsphere-ce-template.md). Run it as root inside that VM, from a copy of this checkout:
#
#   sudo sh scripts/build-vsphere-ce-template.sh            # then power off and convert to a template
#   sh scripts/build-vsphere-ce-template.sh --root DIR --no-packages   # only lay the files out under DIR
#
# Installs only the distribution's own packages -- nothing of imageport, nothing from PyPI: the agent
# bundle comes with each job on the job CD. After this the VM needs no network ever again.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
boot="$here/imageport/engine/ce_boot"
root=""
packages=yes
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$2; shift 2 ;;
    --no-packages) packages=no; shift ;;
    *) echo "usage: $0 [--root DIR] [--no-packages]" >&2; exit 2 ;;
  esac
done
[ -f "$boot/imageport-ce.sh" ] || { echo "$boot/imageport-ce.sh: not found (run from an imageport checkout)" >&2; exit 2; }

if [ $packages = yes ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root (it installs packages and a systemd unit)" >&2; exit 2; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # open-vm-tools: vmware-rpctool (guestinfo) and a clean power-off; python3 + python3-guestfs +
  # python3-hivex + libguestfs0 + a kernel for its appliance: what prepare and diagnostics jobs use;
  # qemu-utils: qemu-img; util-linux (mount, lsblk), coreutils (sha256sum, dd), tar, gzip: the boot service.
  kernel=linux-image-amd64
  . /etc/os-release
  [ "${ID:-}" = ubuntu ] && kernel=linux-image-generic
  apt-get install -y --no-install-recommends open-vm-tools python3 python3-guestfs python3-hivex \
    libguestfs0 supermin "$kernel" qemu-utils util-linux coreutils tar gzip
  # Ubuntu installs kernels readable by root only; supermin (libguestfs's appliance) must read one.
  chmod 0644 /boot/vmlinuz-* 2>/dev/null || true
  apt-get clean
fi

install -d -m 0755 "$root/usr/local/lib/imageport" "$root/etc/systemd/system"
install -m 0755 "$boot/imageport-ce.sh" "$root/usr/local/lib/imageport/imageport-ce.sh"
install -m 0644 "$boot/imageport-ce.service" "$root/etc/systemd/system/imageport-ce.service"

if [ $packages = yes ]; then
  systemctl daemon-reload
  systemctl enable imageport-ce.service vmtoolsd.service 2>/dev/null || systemctl enable imageport-ce.service
  # The kernel's console on the first serial port too: with boot diagnostics the orchestrator gives the CE a
  # serial port written to a datastore file, and the boot service's output (StandardOutput=journal+console)
  # lands there even when the CE never reports back.
  if [ -f /etc/default/grub ] && ! grep -q 'console=ttyS0' /etc/default/grub; then
    sed -i 's/^GRUB_CMDLINE_LINUX="\(.*\)"/GRUB_CMDLINE_LINUX="\1 console=tty0 console=ttyS0,115200n8"/' /etc/default/grub
    update-grub 2>/dev/null || grub-mkconfig -o /boot/grub/grub.cfg
  fi
  # Build libguestfs's appliance once here, so a CE does not build it at every job.
  LIBGUESTFS_BACKEND=direct python3 -c '
import guestfs, hivex
g = guestfs.GuestFS(python_return_dict=True)
g.add_drive_scratch(64 * 1024 * 1024)
g.launch()
g.close()
' > /var/log/imageport-template-guestfs.log 2>&1 || {
    echo "python3-guestfs cannot launch its appliance; see /var/log/imageport-template-guestfs.log" >&2; exit 1; }
  echo "done: power the VM off and convert it to a template; name it in the vSphere connector's ce_template"
fi
