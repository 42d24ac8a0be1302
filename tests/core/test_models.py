from __future__ import annotations

import pytest

from imageport.errors import InputError
from imageport.models import (
    WORKFLOW_STAGES,
    InstallerParameter,
    PortSpec,
    PrepareSpec,
    PublishSpec,
    Stage,
    UploadSpec,
    Workflow,
    parse_model,
)

LOCAL_SRC = {"kind": "local", "path": "vms/gold.raw"}
STAGING = {"kind": "share", "connector": "lab-share", "path": "exports/gold.vhdx"}
AZ_DISK = {"kind": "azure-disk", "connector": "az", "resource_group": "rg-vdi", "name": "gold-os"}


def port(**overrides):  # type: ignore[no-untyped-def]
    spec = {"workflow": "mcs-to-mcs", "source": LOCAL_SRC, "staging": STAGING, "targets": [{"disk": AZ_DISK}]}
    spec.update(overrides)
    return spec


def rejects(model, data, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as info:
        parse_model(model, data)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_complete_mcs_to_mcs_spec_parses_with_citrix_defaults() -> None:
    spec = parse_model(PortSpec, port())
    assert spec.stages == (Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE)  # finalize: optional, auto
    assert spec.upload.sku.value == "Premium_LRS" and spec.upload.threads == 5
    assert spec.prepare.timeout_s == 3600 and spec.export.timeout_s == 7200
    assert spec.export.disk_format is None  # decided by where it writes (a share connector's disk_format)


def test_every_workflow_runs_the_stages_of_the_design_table() -> None:
    assert WORKFLOW_STAGES[Workflow.PVS_TO_MCS] == (Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE)
    # Finalize (optional) right after prepare, before publish: the vDisk published has run its actions.
    assert WORKFLOW_STAGES[Workflow.PVS_TO_PVS] == (Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE, Stage.PUBLISH)
    assert WORKFLOW_STAGES[Workflow.MCS_TO_PVS][-1] is Stage.PUBLISH


def test_unknown_workflow_is_named() -> None:
    rejects(PortSpec, port(workflow="mcs-to-xen"), "workflow:", "'mcs-to-mcs'")


def test_reconfigure_switch_outside_the_allowed_three_is_refused() -> None:
    rejects(
        PortSpec,
        port(prepare={"xd_reconfigure": [{"name": "/quiet"}]}),
        "prepare.xd_reconfigure.0.name",
        "/controllers",
        "/portnumber",
        "/enable_hdx_ports",
    )


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ({"name": "/portnumber", "value": "99999"}, "port from 1 to 65535"),
        ({"name": "/controllers", "value": "not a host!"}, "controller FQDNs"),
        ({"name": "/enable_hdx_ports", "value": "yes"}, "takes no value"),
    ],
)
def test_reconfigure_values_are_checked_per_switch(param, fragment) -> None:  # type: ignore[no-untyped-def]
    rejects(InstallerParameter, param, fragment)


def test_reconfigure_switch_renders_for_the_command_line() -> None:
    p = InstallerParameter(name="/controllers", value="ddc1.corp.local, ddc2.corp.local")
    assert p.render() == '/controllers "ddc1.corp.local ddc2.corp.local"'


@pytest.mark.parametrize("name", ["-starts-with-dash", "ends.", "a" * 81, "has space", "bad/slash"])
def test_disk_names_azure_would_refuse_are_rejected(name: str) -> None:
    rejects(PortSpec, port(targets=[{"disk": {**AZ_DISK, "name": name}}]), "targets.0.disk.azure-disk.name")


def test_negative_or_zero_sizes_and_counts_are_rejected() -> None:
    rejects(UploadSpec, {"source": STAGING, "target": AZ_DISK, "threads": 0}, "threads")
    rejects(PortSpec, port(prepare={"timeout_s": -5}), "prepare.timeout_s", "greater than 0")


def test_unknown_fields_are_rejected_not_ignored() -> None:
    rejects(PortSpec, port(prepare={"enable_rpd": True}), "prepare.enable_rpd", "Extra inputs")


def test_pvs_workflows_need_a_vdisk_file_source_and_a_store() -> None:
    rejects(PortSpec, port(workflow="pvs-to-mcs", source=AZ_DISK), "source must be a vDisk file")
    rejects(PortSpec, port(workflow="mcs-to-pvs", prepare={"provisioning_type": "pvs"}), "needs store and vdisk_name")
    ok = parse_model(
        PortSpec,
        port(
            workflow="pvs-to-pvs",
            source=STAGING,
            prepare={"provisioning_type": "pvs"},
            targets=[
                {
                    "disk": AZ_DISK,
                    "store": {"kind": "share", "connector": "pvs", "path": "Store"},
                    "vdisk_name": "Win11-Gold",
                }
            ],
        ),
    )
    assert ok.targets[0].vdisk_name == "Win11-Gold"


def test_provisioning_type_must_match_the_workflow() -> None:
    rejects(PortSpec, port(prepare={"provisioning_type": "pvs"}), "provisioning_type must be 'mcs'")


def test_paths_may_not_escape_their_connector() -> None:
    rejects(PortSpec, port(staging={**STAGING, "path": "../etc/passwd"}), "staging.share.path", "'..' segments")


def test_staging_software_needs_an_installers_folder() -> None:
    rejects(PrepareSpec, {"disk": LOCAL_SRC, "target_platform": "azure", "mcsio": "install"}, "installers")
    ok = parse_model(
        PrepareSpec,
        {
            "disk": LOCAL_SRC,
            "target_platform": "azure",
            "mcsio": "install",
            "installers": {"kind": "local", "path": "installers"},
        },
    )
    assert ok.mcsio.value == "install"


def test_output_disk_or_snapshot_not_both() -> None:
    rejects(
        PrepareSpec,
        {"disk": AZ_DISK, "target_platform": "azure", "output_disk_name": "a", "output_snapshot_name": "b"},
        "not both",
    )


def test_expected_md5_and_pvs_version_have_a_shape() -> None:
    rejects(PrepareSpec, {"disk": AZ_DISK, "target_platform": "azure", "expected_md5": "xyz"}, "expected_md5")
    rejects(
        PrepareSpec,
        {"disk": AZ_DISK, "target_platform": "azure", "provisioning_type": "pvs", "pvs_install_version": "latest"},
        "pvs_install_version",
    )


@pytest.mark.parametrize("name", ["CON", "lpt1.vhdx", "a:b", "trailing.", ""])
def test_vdisk_names_windows_would_refuse_are_rejected(name: str) -> None:
    rejects(PublishSpec, {"source": LOCAL_SRC, "store": STAGING, "name": name}, "name")


def test_too_many_or_malformed_tags_are_rejected() -> None:
    rejects(
        UploadSpec, {"source": STAGING, "target": AZ_DISK, "tags": {f"k{i}": "v" for i in range(51)}}, "at most 50 tags"
    )
    rejects(UploadSpec, {"source": STAGING, "target": AZ_DISK, "tags": {"a/b": "v"}}, "tag name")


def test_specs_round_trip_through_json() -> None:
    spec = parse_model(PortSpec, port(prepare={"xd_reconfigure": [{"name": "/portnumber", "value": "80"}]}))
    assert PortSpec.model_validate_json(spec.model_dump_json()) == spec


def test_file_references_can_state_the_format_they_must_be() -> None:
    from pydantic import ValidationError

    from imageport.models import DiskFormat, LocalRef, ShareRef

    share = ShareRef.model_validate({"connector": "pvs", "path": "gold.vhdx", "format": "vhdx"})
    assert share.format is DiskFormat.VHDX
    assert LocalRef.model_validate({"path": "gold.img"}).format is None  # default: detected from content
    with pytest.raises(ValidationError, match="format"):
        LocalRef.model_validate({"path": "gold.img", "format": "qcow2"})


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        ("ExportSpec", {"source": {"kind": "local", "path": "a.raw"}, "destination": "W"}, "destination"),
        ("UploadSpec", {"source": {"kind": "local", "path": "a.vhdx"}, "target": "W"}, "target"),
        ("PrepareSpec", {"disk": {"kind": "local", "path": "a.vhdx"}, "target_platform": "azure", "output": "W"},
         "output"),
        ("PublishSpec", {"source": {"kind": "local", "path": "a.vhdx"}, "store": "W", "name": "Gold"}, "store"),
        ("DiagnosticsSpec", {"disk": {"kind": "local", "path": "a.vhdx"}, "output": "W"}, "output"),
    ],
)  # fmt: skip
def test_a_stated_format_on_a_reference_a_stage_writes_is_refused(model: str, data: dict, field: str) -> None:
    """``format:`` says what an input must be; on an output it would be accepted and ignored."""
    import imageport.models as models
    from imageport.errors import InputError

    spec_model = getattr(models, model)
    written = {"kind": "local", "path": "out.vhdx"}
    models.parse_model(spec_model, {**data, field: written})  # the same reference without format is fine
    with pytest.raises(InputError, match=rf"{field}: format states what an image read must be"):
        models.parse_model(spec_model, {**data, field: {**written, "format": "vhdx"}})


def test_a_stated_format_on_a_port_s_staging_or_targets_is_refused() -> None:
    from imageport.errors import InputError
    from imageport.models import PortSpec, parse_model

    port = {
        "workflow": "mcs-to-pvs",
        "source": {"kind": "local", "path": "gold.raw", "format": "raw"},  # an input: allowed
        "staging": {"kind": "share", "connector": "nas", "path": "staging/gold.vhdx"},
        "targets": [{"disk": {"kind": "local", "path": "t/gold.vhd"}, "store": {"kind": "share",
                     "connector": "pvs", "path": "Store"}, "vdisk_name": "Gold"}],
        "prepare": {"provisioning_type": "pvs"},
    }  # fmt: skip
    parse_model(PortSpec, port)
    for where, patch in (
        ("staging", {"staging": {**port["staging"], "format": "vhdx"}}),
        ("targets.0.disk", {"targets": [{**port["targets"][0], "disk": {"kind": "local", "path": "t/g.vhd",
                                                                          "format": "vhd"}}]}),
        ("targets.0.store", {"targets": [{**port["targets"][0], "store": {"kind": "share", "connector": "pvs",
                                                                           "path": "Store", "format": "vhdx"}}]}),
    ):  # fmt: skip
        with pytest.raises(InputError, match=rf"{where}: format states"):
            parse_model(PortSpec, {**port, **patch})


@pytest.mark.parametrize(
    ("field", "value", "advice"),
    [
        ("install_upl", True, "install it with the VDA in the master image"),
        ("update_layer_repo", "\\\\srv\\layers", "'User Layer Repository Path'"),
    ],
)
def test_app_layering_user_layer_switches_are_refused_naming_what_to_do(field: str, value: object, advice: str) -> None:
    spec = {"disk": AZ_DISK, "target_platform": "azure", field: value}
    rejects(PrepareSpec, spec, f"{field} is not supported", advice)
    rejects(PortSpec, port(prepare={field: value}), f"prepare: {field} is not supported")
    # Left at the old default (a spec saved by an earlier release), it asked for nothing: dropped, not an error.
    quiet = parse_model(PrepareSpec, {**spec, field: False if field == "install_upl" else None})
    assert field not in PrepareSpec.model_fields and field not in quiet.model_dump()


def test_publish_has_a_timeout_of_its_own_inside_a_port() -> None:
    spec = parse_model(PortSpec, port(workflow="mcs-to-pvs", prepare={"provisioning_type": "pvs", "timeout_s": 60},
                                      publish={"timeout_s": 7, "disk_format": "vhd"},  # no connector to ask
                                      targets=[{"disk": AZ_DISK, "store": STAGING, "vdisk_name": "Gold"}]))  # fmt: skip
    from flows.ports import _prepared, _publish_spec

    _, prepared = _prepared(spec.targets[0], spec)
    publish, vdisk = _publish_spec(spec, spec.targets[0], prepared)
    assert publish.timeout_s == 7 and PublishSpec.model_fields["timeout_s"].default == 7200
    assert vdisk.path.endswith("Gold.vhd")  # the port's own disk_format names the vDisk file


def test_export_and_prepare_tags_pass_the_rules_of_every_resource_they_go_on() -> None:
    spec = parse_model(PortSpec, port(export={"tags": {"cost center": "vdi-7"}}, prepare={"tags": {"team": "a/b"}}))
    assert spec.export.tags == {"cost center": "vdi-7"} and spec.prepare.tags == {"team": "a/b"}
    assert parse_model(PortSpec, port(upload={"tags": {"team": "vdi"}})).upload.tags == {"team": "vdi"}
    # imageport's own marks cannot be set or overridden, on any stage, whatever the case (Azure's tag names
    # are case-insensitive).
    for stage in ("export", "prepare", "upload"):
        rejects(PortSpec, port(**{stage: {"tags": {"Imageport-Run": "x"}}}), f"{stage}.tags",
                "tag 'Imageport-Run' is imageport's own mark")  # fmt: skip
    # An Azure CE's blobs carry them as blob index tags: 10 a blob, 4 of them imageport's; their characters.
    rejects(PortSpec, port(prepare={"tags": {f"k{i}": "v" for i in range(7)}}), "prepare.tags", "at most 6 tags")
    rejects(PortSpec, port(export={"tags": {"team#1": "v"}}), "export.tags", "tag name 'team#1'", "blob index")
    rejects(PortSpec, port(prepare={"tags": {"team": "a&b"}}), "prepare.tags", "tag 'team': the value")
    assert len(parse_model(PortSpec, port(upload={"tags": {f"k{i}": "v&" for i in range(50)}})).upload.tags) == 50
