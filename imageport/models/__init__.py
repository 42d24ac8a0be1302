"""Typed models: where disks are and what each stage is asked to do (what it did: imageport/results.py).

Everything that crosses a layer or a process boundary (flow parameters, agent
job files, CLI specs) is one of these pydantic v2 models, so the
Prefect UI renders them as forms and bad input fails before anything is
created. Option names follow Citrix Image Portability (see
docs/architecture.md and the Citrix reference) in snake_case.

``parse_model`` is the one entry point for untrusted input: it turns a pydantic
``ValidationError`` into an ``InputError`` whose lines each start with the
dotted path of the offending field.

One concept per module: ``vocabulary`` (enums, workflows, the strict base model),
``fields`` (names the platforms accept, constrained field types), ``refs`` (disk
references), ``options`` (per-stage options), ``specs`` (stage and workflow specs),
``parsing``, ``parameters`` (a model as a deployment's schema accepts it). The names
below are the package's public surface: import them from ``imageport.models``.
"""

from imageport.models.fields import (
    AzureName,
    AzureResourceGroup,
    ConnectorName,
    PvsText,
    RelativePath,
    Tags,
    VDiskName,
    azure_disk_name,
    azure_resource_group,
    connector_name,
)
from imageport.models.options import (
    ExportOptions,
    FinalizeOptions,
    InstallerParameter,
    PrepareOptions,
    PublishOptions,
    ReconfigureSwitch,
    UploadOptions,
)
from imageport.models.parameters import as_parameters
from imageport.models.parsing import (
    describe_validation_error,
    parse_model,
)
from imageport.models.refs import (
    AzureDiskRef,
    AzureSnapshotRef,
    BlobFolderRef,
    DatastoreFileRef,
    DiskRef,
    FileRef,
    InputFormat,
    LocalRef,
    PlatformDiskRef,
    ShareRef,
    VsphereDiskRef,
    WrittenFileRef,
    WrittenLocalRef,
    WrittenPlatformDiskRef,
    WrittenPreparedRef,
    WrittenStoreRef,
    XenServerDiskRef,
)
from imageport.models.specs import (
    DiagnosticsSpec,
    ExportSpec,
    FinalizeSpec,
    PortSpec,
    PortTarget,
    PrepareSpec,
    PublishSpec,
    UploadSpec,
)
from imageport.models.vocabulary import (
    DEFAULT_DISK_FORMAT,
    WORKFLOW_STAGES,
    AzureSku,
    DiskFormat,
    FinalizeMode,
    HyperVGeneration,
    InstallType,
    OsType,
    ProvisioningType,
    ShareDiskFormat,
    Stage,
    TargetPlatform,
    VerifyMode,
    Workflow,
)

__all__ = [
    "DEFAULT_DISK_FORMAT",
    "WORKFLOW_STAGES",
    "AzureDiskRef",
    "AzureName",
    "AzureResourceGroup",
    "AzureSku",
    "AzureSnapshotRef",
    "BlobFolderRef",
    "ConnectorName",
    "DatastoreFileRef",
    "DiagnosticsSpec",
    "DiskFormat",
    "DiskRef",
    "ExportOptions",
    "ExportSpec",
    "FileRef",
    "FinalizeMode",
    "FinalizeOptions",
    "FinalizeSpec",
    "HyperVGeneration",
    "InputFormat",
    "InstallType",
    "InstallerParameter",
    "LocalRef",
    "OsType",
    "PlatformDiskRef",
    "PortSpec",
    "PortTarget",
    "PrepareOptions",
    "PrepareSpec",
    "ProvisioningType",
    "PublishOptions",
    "PublishSpec",
    "PvsText",
    "ReconfigureSwitch",
    "RelativePath",
    "ShareDiskFormat",
    "ShareRef",
    "Stage",
    "Tags",
    "TargetPlatform",
    "UploadOptions",
    "UploadSpec",
    "VDiskName",
    "VerifyMode",
    "VsphereDiskRef",
    "Workflow",
    "WrittenFileRef",
    "WrittenLocalRef",
    "WrittenPlatformDiskRef",
    "WrittenPreparedRef",
    "WrittenStoreRef",
    "XenServerDiskRef",
    "as_parameters",
    "azure_disk_name",
    "azure_resource_group",
    "connector_name",
    "describe_validation_error",
    "parse_model",
]
