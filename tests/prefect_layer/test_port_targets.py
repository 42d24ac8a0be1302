"""What each kind of port target is uploaded as and prepared into (no service: the specs a port builds)."""

from __future__ import annotations

from typing import Any

import pytest

from flows.ports import _prepared
from imageport.adapters.datastore import prepared_output as vsphere_output
from imageport.adapters.registry import adapter_for
from imageport.errors import InputError
from imageport.models import (
    AzureDiskRef,
    AzureSnapshotRef,
    DatastoreFileRef,
    PortSpec,
    PrepareSpec,
    TargetPlatform,
    UploadSpec,
)
from imageport.models import parse_model as parse

VM = {"kind": "vsphere", "connector": "vc", "vm": "gold"}
STAGING = {"kind": "share", "connector": "share", "path": "staging/gold.vhdx"}
VDISK = {"kind": "share", "connector": "share", "path": "vdisks/gold.vhdx"}
DS = {"kind": "datastore", "connector": "vc2", "datastore": "LocalDS_0", "path": "gold/gold.vmdk"}


def azure(name: str) -> dict[str, str]:
    return {"kind": "azure-disk", "connector": "az", "resource_group": "rg", "name": name}


def port(
    targets: list[dict[str, Any]], source: dict[str, Any] = VM, workflow: str = "mcs-to-mcs", **prepare: Any
) -> PortSpec:
    return parse(PortSpec, {"workflow": workflow, "source": source, "staging": STAGING,
                            "targets": [{"disk": t} for t in targets], "prepare": prepare})  # fmt: skip


def test_a_mixed_fan_out_prepares_a_snapshot_on_azure_and_a_vmdk_with_its_vm_on_vsphere() -> None:
    spec = port([azure("weu-gold"), {**DS, "create_vm": "gold-vm"}], output_snapshot_name="gold-v2")
    on_azure, snapshot = _prepared(spec.targets[0], spec)
    assert on_azure.output_snapshot_name == "gold-v2" and on_azure.target_platform is TargetPlatform.AZURE
    assert snapshot == AzureSnapshotRef(connector="az", resource_group="rg", name="gold-v2")
    on_vsphere, prepared = _prepared(spec.targets[1], spec)
    assert on_vsphere.target_platform is TargetPlatform.VSPHERE
    assert on_vsphere.disk == DatastoreFileRef(connector="vc2", datastore="LocalDS_0", path="gold/gold.vmdk")
    assert on_vsphere.output == DatastoreFileRef(connector="vc2", datastore="LocalDS_0",
                                                 path="gold/gold-prepared.vmdk", create_vm="gold-vm")  # fmt: skip
    assert prepared == on_vsphere.output.model_copy(update={"create_vm": None})  # what later stages read
    # The upload puts the disk on the datastore without a VM: the VM is for the prepared copy.
    assert adapter_for(spec.targets[1].disk).plain(spec.targets[1].disk) == on_vsphere.disk
    assert parse(UploadSpec, {"source": STAGING, "target": spec.targets[1].disk.model_dump()}).target.create_vm


def test_several_azure_targets_get_a_snapshot_each_named_after_their_disk() -> None:
    spec = port([azure("weu-gold"), azure("neu-gold")], output_snapshot_name="gold-v2")
    names = [_prepared(t, spec)[1].name for t in spec.targets]
    assert names == ["gold-v2-weu-gold", "gold-v2-neu-gold"]
    # output_disk_name is not dropped with several targets of a kind: each gets its own, named the same way.
    spec = port([azure("weu-gold"), azure("neu-gold")], output_disk_name="gold-v3")
    assert [_prepared(t, spec)[1].name for t in spec.targets] == ["gold-v3-weu-gold", "gold-v3-neu-gold"]
    assert [_prepared(t, spec)[0].output_disk_name for t in spec.targets] == ["gold-v3-weu-gold", "gold-v3-neu-gold"]
    too_long = port([azure("a" * 60), azure("b")], output_snapshot_name="s" * 30)
    with pytest.raises(InputError, match=r"prepare of a target:\n  name: .* is not a valid Azure disk/snapshot name"):
        _prepared(too_long.targets[0], too_long)


def test_every_workflow_takes_a_vsphere_target_and_a_snapshot_needs_an_azure_one() -> None:
    azure_source = {"kind": "azure-disk", "connector": "az", "resource_group": "rg", "name": "master"}
    other_dc = {**DS, "connector": "vc-dc1"}
    for source, workflow in ((azure_source, "mcs-to-mcs"), (VDISK, "pvs-to-mcs"), (VM, "mcs-to-mcs")):
        spec = port([other_dc], source=source, workflow=workflow)
        assert isinstance(_prepared(spec.targets[0], spec)[1], DatastoreFileRef)
    with pytest.raises(InputError, match="output_snapshot_name: an Azure snapshot is the output of an Azure target"):
        port([DS], output_snapshot_name="snap")
    with pytest.raises(InputError, match=r"targets\.0\.disk: a disk written to a datastore is a VMDK"):
        port([{**DS, "path": "gold/gold.vhdx"}])
    with pytest.raises(InputError, match="source: create_vm/attach_to_vm are options of an upload"):
        port([azure("x")], source={**DS, "create_vm": "vm"})


def prepare(**fields: Any) -> PrepareSpec:
    return parse(PrepareSpec, {"disk": DS, "target_platform": "vsphere", **fields})


def test_a_vsphere_prepare_output_is_named_next_to_its_input_or_as_asked() -> None:
    assert vsphere_output(prepare()).path == "gold/gold-prepared.vmdk"
    assert vsphere_output(prepare(output_disk_name="gold-v2")).path == "gold/gold-v2.vmdk"
    asked = {**DS, "datastore": "LocalDS_1", "path": "out/new.vmdk", "attach_to_vm": "vdi-01"}
    assert vsphere_output(prepare(output=asked)) == DatastoreFileRef.model_validate(asked)
    with pytest.raises(InputError, match="output_snapshot_name: an Azure snapshot is the output of an Azure disk"):
        vsphere_output(prepare(output_snapshot_name="snap"))
    with pytest.raises(InputError, match="output: a vSphere disk is prepared onto a datastore"):
        vsphere_output(prepare(output={"kind": "local", "path": "x.vhdx"}))
    with pytest.raises(InputError, match="stays on the CE's vCenter"):
        vsphere_output(prepare(output={**DS, "connector": "other"}))


def test_azure_disk_targets_keep_their_names() -> None:
    spec = port([azure("weu-gold")], output_disk_name="gold-prepared-v2")
    assert _prepared(spec.targets[0], spec)[1] == AzureDiskRef(connector="az", resource_group="rg",
                                                              name="gold-prepared-v2")  # fmt: skip
