"""Every deployment's parameter form, as the default Prefect UI renders it: typed, titled, described controls.

The rules are prefect-ui-library's (``tests/infra/ui_forms.py``); the browser test
(``test_ui_browser.py``) fills two of these forms for real.
"""

from __future__ import annotations

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import build_error_obj, validate

from deployments.catalog import CATALOG
from flows.ports import mcs_to_mcs
from imageport.models import PortSpec, UploadOptions, Workflow, as_parameters
from tests.infra.ui_forms import form_problems, resolved


def _schema(name: str) -> dict:
    return parameter_schema(CATALOG[name].load().fn).model_dump(mode="json")


@pytest.mark.parametrize("name", list(CATALOG))
def test_no_field_of_any_deployment_falls_back_to_a_json_box(name: str) -> None:
    assert form_problems(_schema(name)) == []


def test_the_checker_knows_what_the_ui_cannot_render() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"$ref": "#/definitions/S", "title": "spec", "description": "d", "position": 0},
        },
        "required": ["spec"],
        "definitions": {
            "S": {"type": "object", "title": "S", "required": ["need"], "properties": {
                "ref": {"title": "Ref", "description": "d", "oneOf": [{"$ref": "#/definitions/A"}],
                        "discriminator": {"propertyName": "kind"}},
                "tags": {"title": "Tags", "description": "d", "type": "object", "additionalProperties": {}},
                "note": {"title": "Note", "description": "d", "anyOf": [{"type": "string"}, {"type": "null"}]},
                "pick": {"title": "Pick", "description": "d", "anyOf": [{"$ref": "#/definitions/A"}, {"type": "null"}]},
                "need": {"type": "string"},
            }},
            "A": {"type": "object", "title": "ShareDiskFormat", "properties": {"x": {"type": "string"}}},
        },
    }
    assert sorted(form_problems(schema)) == sorted([
        "spec.need: required, but shown after optional fields",
        "spec.ref: type oneOf falls back to a JSON box",
        "spec.tags: an object without properties is a JSON box",
        "spec.note: a nullable string needs a str/None toggle before it can be typed",
        "spec.note: union choice labelled 'str'",
        "spec.pick: union choice labelled 'ShareDiskFormat'",
        "spec.pick<ShareDiskFormat>.x: no title",
        "spec.pick<ShareDiskFormat>.x: no description",
        "spec.need: no title",
        "spec.need: no description",
    ])


def test_a_port_deployment_fixes_its_workflow() -> None:
    schema = _schema("pvs-to-pvs")
    spec = resolved(schema, schema["properties"]["spec"])
    assert spec["properties"]["workflow"]["const"] == "pvs-to-pvs" and "workflow" not in spec["required"]
    assert spec["required"] == ["source", "staging", "targets"]
    assert list(spec["properties"])[:3] == ["source", "staging", "targets"]
    # Left out (as the form may), the flow fills it in; a different one is refused by the model as before.
    local = {"kind": "local", "path": "a.vhdx"}
    ported = {"source": {"kind": "vsphere", "connector": "vc", "vm": "gold"}, "staging": local,
              "targets": [{"disk": {**local, "path": "b.vhdx"}}]}  # fmt: skip
    assert mcs_to_mcs.validate_parameters({"spec": ported})["spec"].workflow is Workflow.MCS_TO_MCS
    assert PortSpec.model_validate({**ported, "workflow": "mcs-to-mcs"}).workflow is Workflow.MCS_TO_MCS


def test_tags_are_name_value_rows_and_still_a_mapping() -> None:
    rows = [{"name": "owner", "value": "vdi"}, {"name": "cost", "value": "42"}]
    options = UploadOptions.model_validate({"tags": rows})
    assert options.tags == {"owner": "vdi", "cost": "42"}
    assert options.model_dump(mode="json")["tags"] == rows
    assert UploadOptions.model_validate({"tags": {"owner": "vdi"}}).tags == {"owner": "vdi"}
    with pytest.raises(ValueError, match="given twice"):
        UploadOptions.model_validate({"tags": [*rows, rows[0]]})


@pytest.mark.parametrize("workflow", list(Workflow))
def test_a_spec_file_leaving_options_out_is_sent_as_the_deployments_schema_accepts_it(workflow: Workflow) -> None:
    """``imageport port W --spec FILE`` sends ``as_parameters`` of the parsed spec; the server checks it with
    Prefect's ``validate`` against the deployment's schema (a 409 on refusal): no ``format: null`` there."""
    local = {"kind": "local", "connector": "lab", "path": "gold.vhdx"}  # no format: the spec file leaves it out
    target = {"disk": {**local, "path": "t.vhd"}, "store": {**local, "path": "store"}, "vdisk_name": "gold"}
    to_pvs = workflow.value.endswith("to-pvs")
    spec = PortSpec.model_validate({"workflow": workflow.value, "source": local, "staging": {**local, "path": "s.vhdx"},
                                    "targets": [target if to_pvs else {"disk": target["disk"]}],
                                    "prepare": {"provisioning_type": "pvs" if to_pvs else "mcs"}})  # fmt: skip
    schema = _schema(workflow.value)

    def refused(parameters: dict) -> dict:
        return build_error_obj(validate({"spec": parameters}, schema, raise_on_error=False, ignore_required=True))

    sent = as_parameters(spec)
    assert refused(sent)["valid"], refused(sent)
    assert PortSpec.model_validate(sent) == spec  # nothing the flow reads is lost
    assert sent["export"]["hash_disk"] is True and sent["export"]["timeout_s"] == 7200  # defaults filled
    assert "format" not in sent["staging"] and "disk_format" not in sent["export"]  # a None default left out
    assert not refused(spec.model_dump(mode="json"))["valid"]  # what the CLI sent before: format null, refused
