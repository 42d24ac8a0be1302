#!/bin/sh
# Boot service of a vSphere compositing-engine template (Linux with open-vm-tools, python3-guestfs,
# qemu-utils and imageport installed). Runs once per boot: reads the job the orchestrator put in
# guestinfo.imageport.job, links the attached disks by SCSI unit as /run/imageport/luns/lunN, runs
# the agent, hands back its compressed result in guestinfo.imageport.result, and powers off.
set -u
job=$(vmware-rpctool "info-get guestinfo.imageport.job" 2>/dev/null) || exit 0
[ -n "$job" ] || exit 0
work=$(mktemp -d); umask 077
mkdir -p /run/imageport/luns
lsblk -dno NAME,HCTL | while read -r name hctl; do
  unit=$(echo "$hctl" | cut -d: -f3)
  [ -n "$unit" ] && ln -sf "/dev/$name" "/run/imageport/luns/lun$unit"
done
echo "$job" | base64 -d > "$work/job.json"
result=$(IMAGEPORT_RESULT_ENCODING=zlib LIBGUESTFS_BACKEND=direct \
  python3 -m imageport.engine.agent "$work/job.json" 2>"$work/agent.log" | tail -n 1)
vmware-rpctool "info-set guestinfo.imageport.result $result"
rm -rf "$work"
systemctl poweroff
