#!/bin/sh
# Boot service of the vSphere compositing-engine template (docs/vsphere-ce-template.md).
# Needs only the template's own distribution packages: open-vm-tools (vmware-rpctool), python3,
# python3-guestfs, python3-hivex, libguestfs, qemu-utils, coreutils, util-linux, tar, gzip.
# Nothing of imageport is installed: the agent bundle comes with each job.
#
# Runs once per boot, as root. The orchestrator (imageport/engine/vsphere.py) has put a one-line
# envelope in guestinfo.imageport.job and attached the job CD (imageport-agent.pyz, job.json):
#   imageport-ce boot=1 protocol=P bundle=SHA256 job=SHA256 result-lun=N
# This script refuses a boot protocol it does not speak, copies the bundle and the job off the CD and
# checks both sha256 digests before running anything, links the SCSI disks by unit as
# /run/imageport/luns/lunN, runs `python3 BUNDLE JOB.json`, writes the result (header + gzip tar of
# the agent's stdout and logs) raw to the result disk, announces its length and digest in
# guestinfo.imageport.result, and powers off. Format: imageport/engine/ce_result.py.
set -u
SPEAKS=1
root=${IMAGEPORT_CE_ROOT:-}  # "" in a CE; test stand-ins run the script under a scratch root
cdrom=$root/dev/sr0
luns=$root/run/imageport/luns

envelope=$(vmware-rpctool "info-get guestinfo.imageport.job" 2>/dev/null) || exit 0
[ -n "$envelope" ] || exit 0  # no job: a template booted for maintenance
umask 077
work=$(mktemp -d)
log() { echo "imageport-ce: $*" >> "$work/boot.log"; echo "imageport-ce: $*" >&2; }
finish() { vmware-rpctool "info-set guestinfo.imageport.result $1" >/dev/null; rm -rf "$work"; systemctl poweroff; exit 0; }
refuse() { log "refused: $*"; finish "refused: $*"; }
field() {
  for kv in $envelope; do
    case $kv in "$1="*) echo "${kv#*=}"; return 0 ;; esac
  done
}
hex64() { echo "$1" | grep -Eqx '[0-9a-f]{64}'; }

set -- $envelope
[ "${1:-}" = imageport-ce ] || refuse "guestinfo.imageport.job is not an imageport envelope"
boot=$(field boot); bundle_sha=$(field bundle); job_sha=$(field job); result_lun=$(field result-lun)
[ "$boot" = "$SPEAKS" ] || refuse "this template's boot service speaks boot protocol $SPEAKS, the job came with boot protocol ${boot:-none}; rebuild the template with this imageport's recipe (docs/vsphere-ce-template.md)"
hex64 "$bundle_sha" && hex64 "$job_sha" || refuse "the envelope carries no valid sha256 digests"
echo "$result_lun" | grep -Eqx '[0-9]+' || refuse "the envelope names no result disk"

mkdir "$work/cd"
mount -o ro "$cdrom" "$work/cd" 2>>"$work/boot.log" || refuse "cannot mount the job CD $cdrom"
cp "$work/cd/imageport-agent.pyz" "$work/agent.pyz" && cp "$work/cd/job.json" "$work/job.json"
copied=$?
umount "$work/cd" 2>/dev/null
[ $copied -eq 0 ] || refuse "the job CD lacks imageport-agent.pyz or job.json"
# Checked on the copies, so what runs is exactly what was checked.
[ "$(sha256sum "$work/agent.pyz" | cut -d' ' -f1)" = "$bundle_sha" ] || refuse "the agent bundle's sha256 does not match the envelope; nothing was run"
[ "$(sha256sum "$work/job.json" | cut -d' ' -f1)" = "$job_sha" ] || refuse "the job file's sha256 does not match the envelope; nothing was run"
log "bundle and job verified (sha256 $bundle_sha, $job_sha)"

mkdir -p "$luns"
lsblk -dno NAME,HCTL,TYPE | while read -r name hctl type; do
  [ "$type" = disk ] || continue
  unit=$(echo "$hctl" | cut -d: -f3)
  [ -n "$unit" ] && ln -sfn "$root/dev/$name" "$luns/lun$unit"
done
result_dev=$luns/lun$result_lun
[ -e "$result_dev" ] || refuse "no disk at SCSI unit $result_lun for the result"

log "running the agent with $(python3 -c 'import sys; print(sys.version.split()[0])' 2>&1)"
(cd "$work" && IMAGEPORT_DEVICE_ROOT="$luns" LIBGUESTFS_BACKEND=direct python3 agent.pyz job.json > agent.out 2> agent.log)
log "the agent exited with status $?"

tar -czf "$work/result.tgz" -C "$work" agent.out agent.log boot.log
length=$(wc -c < "$work/result.tgz" | tr -d ' ')
sha=$(sha256sum "$work/result.tgz" | cut -d' ' -f1)
printf 'imageport-result 1 %s %s\n' "$length" "$sha" | dd of="$result_dev" bs=512 count=1 conv=sync,notrunc 2>/dev/null &&
  dd if="$work/result.tgz" of="$result_dev" bs=512 seek=1 conv=notrunc 2>/dev/null ||
  refuse "the result ($length bytes) could not be written to the result disk"
sync
finish "imageport-result 1 $length $sha"
