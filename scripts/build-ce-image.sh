#!/usr/bin/env bash
# Builds the prebuilt compositing-engine image for Azure: a stock Ubuntu 22.04 with the distribution's
# packages the agent needs (the same cloud-config a stock CE gets at first boot), generalized and captured
# as a version of an Azure Compute Gallery image definition. Set the definition's id as the Azure connector's
# ce_gallery_image: CEs then start without egress to the distribution's mirrors.
#
# Usage: scripts/build-ce-image.sh RESOURCE_GROUP GALLERY SUBNET_ID [IMAGE_DEFINITION] [LOCATION]
# Needs: az (logged in, rights to create VMs/NICs/disks and gallery images in RESOURCE_GROUP), and the
# builder VM's subnet must reach the mirrors (once, here). The builder VM gets no public IP.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,9p' "$0"; exit 2; }
rg=$1 gallery=$2 subnet=$3 definition=${4:-imageport-ce}
location=${5:-$(az group show -n "$rg" --query location -o tsv)}
python=${PYTHON:-.venv/bin/python}
base=Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest
vm=imageport-ce-build-$(date +%s)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# The cloud-config is the engine's own (imageport/engine/azure_bootstrap.py), so the lists never drift.
"$python" -c "from imageport.engine.azure_bootstrap import cloud_config; print(cloud_config(), end='')" \
  > "$work/cloud-config.yaml"

az sig show -g "$rg" -r "$gallery" >/dev/null 2>&1 || az sig create -g "$rg" -r "$gallery" -l "$location" >/dev/null
az sig image-definition show -g "$rg" -r "$gallery" -i "$definition" >/dev/null 2>&1 ||
  az sig image-definition create -g "$rg" -r "$gallery" -i "$definition" -l "$location" \
    --publisher imageport --offer compositing-engine --sku ubuntu-22.04 \
    --os-type Linux --os-state Generalized --hyper-v-generation V2 >/dev/null

cleanup() {
  az vm delete -g "$rg" -n "$vm" --yes --force-deletion none >/dev/null 2>&1 || true
  az network nic delete -g "$rg" -n "${vm}VMNic" >/dev/null 2>&1 || true
  az disk delete -g "$rg" -n "${vm}-os" --yes >/dev/null 2>&1 || true
}
trap 'cleanup; rm -rf "$work"' EXIT

az vm create -g "$rg" -n "$vm" -l "$location" --image "$base" --size Standard_D2s_v5 \
  --subnet "$subnet" --public-ip-address "" --nsg "" --os-disk-name "${vm}-os" \
  --admin-username imageport --generate-ssh-keys --custom-data "$work/cloud-config.yaml" \
  --tags created-by=imageport purpose=ce-image-build >/dev/null

# First boot installs the packages; check them, build libguestfs's appliance once (saves each CE ~1 min),
# then deprovision so the image can be generalized.
az vm run-command invoke -g "$rg" -n "$vm" --command-id RunShellScript --scripts \
  "cloud-init status --wait --long && python3 -c 'import guestfs, hivex' && qemu-img --version && \
   LIBGUESTFS_BACKEND=direct libguestfs-test-tool >/var/log/libguestfs-test-tool.log 2>&1 && \
   cloud-init clean --logs && waagent -deprovision+user -force" \
  --query 'value[0].message' -o tsv

az vm deallocate -g "$rg" -n "$vm" >/dev/null
az vm generalize -g "$rg" -n "$vm" >/dev/null
version=1.0.$(date +%Y%m%d%H%M)
az sig image-version create -g "$rg" -r "$gallery" -i "$definition" -e "$version" -l "$location" \
  --virtual-machine "$(az vm show -g "$rg" -n "$vm" --query id -o tsv)" >/dev/null
echo "ce_gallery_image: $(az sig image-definition show -g "$rg" -r "$gallery" -i "$definition" --query id -o tsv)"
echo "(version $version; the connector takes the definition id for the latest version, or .../versions/$version)"
