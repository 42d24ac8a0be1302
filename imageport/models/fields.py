"""Names the platforms accept, and the constrained field types built from them and ``imageport.names``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
)

from imageport import names
from imageport.forms import NameValuePairs

# --- names the platforms accept ----------------------------------------------

# Azure managed disk / snapshot names: 1-80 chars, letters, digits, '_', '.', '-';
# must start with a letter or digit and end with a letter, digit or '_'.
_AZURE_DISK_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
# Azure resource group names: 1-90 chars of letters, digits, '_', '-', '.', '(' ,')'; not ending in '.'.
_AZURE_RG_NAME = re.compile(r"^[\w().-]{0,89}[\w()-]$")
_CONNECTOR_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def azure_disk_name(value: str) -> str:
    if not _AZURE_DISK_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid Azure disk/snapshot name: use 1-80 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit and ending with a letter, digit or '_'"
        )
    return value


def azure_resource_group(value: str) -> str:
    if not _AZURE_RG_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid Azure resource group name: use 1-90 letters, digits, "
            "'_', '-', '.', '(' or ')', not ending with '.'"
        )
    return value


def connector_name(value: str) -> str:
    """Connector names are Prefect block document names: lowercase slugs."""
    if not _CONNECTOR_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid connector name: use lowercase letters, digits and '-', "
            "1-63 characters, not starting or ending with '-'"
        )
    return value


AzureName = Annotated[str, AfterValidator(azure_disk_name), Field(description="Azure disk or snapshot name.")]
AzureResourceGroup = Annotated[str, AfterValidator(azure_resource_group), Field(description="Azure resource group.")]
ConnectorName = Annotated[
    str,
    AfterValidator(connector_name),
    Field(description="Name of a saved connector (Prefect block document name)."),
]
# The rules themselves live in imageport/names.py, shared with the CLI and the publish code.
RelativePath = Annotated[str, AfterValidator(names.store_path)]
VDiskName = Annotated[
    str, AfterValidator(names.vdisk_name), Field(description="vDisk name without extension (PVS's rules).")
]
PvsText = Annotated[str, AfterValidator(names.free_text)]


# imageport's own marks on what it creates (``engine.tags``, ``platforms.runs``): the reaper finds its
# resources by them, so a user's tags may never set them (Azure compares tag names case-insensitively).
CREATED_BY_TAG = "created-by"
RUN_TAG = "imageport-run"
STAGE_TAG = "imageport-stage"
EXPIRES_TAG = "imageport-expires"
RESERVED_TAGS = (CREATED_BY_TAG, RUN_TAG, STAGE_TAG, EXPIRES_TAG)
# Blob index tags (the Azure CE's blobs carry the tags as these): at most 10 a blob, names 1-128 and values
# 0-256 characters of letters, digits and `` +-.:=_/`` -- a name also without '/', Azure's resource rule.
BLOB_TAGS_MAX = 10
_BLOB_TAG_NAME = re.compile(r"^[A-Za-z0-9 +\-.:=_]{1,128}$")
_BLOB_TAG_VALUE = re.compile(r"^[A-Za-z0-9 +\-.:=_/]{0,256}$")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    # Azure's resource tags: 50 a resource, 512-char names without <>%&\?/, 256-char values.
    if len(tags) > 50:
        raise ValueError("at most 50 tags are allowed (Azure's limit)")
    for key, val in tags.items():
        if not key or len(key) > 512 or any(c in key for c in "<>%&\\?/"):
            raise ValueError(f"tag name {key!r} is empty, too long or contains one of <>%&\\?/")
        if len(val) > 256:
            raise ValueError(f"tag {key!r}: values may be at most 256 characters")
        if key.lower() in RESERVED_TAGS:
            raise ValueError(f"tag {key!r} is imageport's own mark (one of {', '.join(RESERVED_TAGS)}); "
                             "choose another name")  # fmt: skip
    return tags


def _check_created_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags an export or prepare puts on *every* resource it creates: the rules of each place they go.

    Azure resources' (above) and, tightest, the CE's blobs' index tags, which also carry imageport's four."""
    _check_tags(tags)
    room = BLOB_TAGS_MAX - len(RESERVED_TAGS)
    if len(tags) > room:
        raise ValueError(
            f"at most {room} tags are allowed here: an Azure compositing engine's blobs take {BLOB_TAGS_MAX} index "
            f"tags and {len(RESERVED_TAGS)} are imageport's"
        )
    for key, val in tags.items():
        if not _BLOB_TAG_NAME.match(key):
            raise ValueError(f"tag name {key!r}: use 1-128 letters, digits, spaces or +-.:=_ (Azure blob index tags)")
        if not _BLOB_TAG_VALUE.match(val):
            raise ValueError(f"tag {key!r}: the value may hold only letters, digits, spaces and +-.:=_/ "
                             "(Azure blob index tags)")  # fmt: skip
    return tags


Tags = Annotated[
    dict[str, str],
    BeforeValidator(NameValuePairs.parse),
    AfterValidator(_check_tags),
    PlainSerializer(NameValuePairs.dump, when_used="json"),
    NameValuePairs(),
    Field(
        default_factory=dict, description="Tags put on what an upload creates: the Azure managed disk, a vSphere VM."
    ),
]
CreatedTags = Annotated[
    dict[str, str],
    BeforeValidator(NameValuePairs.parse),
    AfterValidator(_check_created_tags),
    PlainSerializer(NameValuePairs.dump, when_used="json"),
    NameValuePairs(),
    Field(
        default_factory=dict,
        description="Tags put on every resource the stage creates on a platform (besides imageport's own marks).",
    ),
]
