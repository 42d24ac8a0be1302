"""The option and argument types every command shares (``--json``, ``--from``, ``--verify``...)."""

from __future__ import annotations

from typing import Annotated

import typer

from imageport.models import DiskFormat, VerifyMode

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
WaitLockFlag = Annotated[
    bool,
    typer.Option(
        "--wait-lock", help="If another run is writing the same output, wait for it instead of failing at once"
    ),
]
FromFormat = Annotated[
    DiskFormat | None,
    typer.Option(
        "--from",
        help="The format the input must be (refused when its content says otherwise); "
        "raw also reads a file whose damaged signatures would otherwise be refused",
        case_sensitive=False,
    ),
]
VerifyFlag = Annotated[
    VerifyMode,
    typer.Option(
        "--verify",
        help="full: re-read the whole target after writing (one read of its data) and compare content hashes",
        case_sensitive=False,
    ),
]
Image = Annotated[
    str,
    typer.Argument(
        help="Image: a local path, smb://CONNECTOR/path, local://CONNECTOR/path, azure-disk://CONNECTOR/RG/DISK, "
        "azure-snapshot://CONNECTOR/RG/NAME, datastore://CONNECTOR/DATASTORE/path or sas+https://BLOB-SAS-URL "
        "(format detected from content; what a run's result prints is accepted as it is)"
    ),
]
# A VM disk's export (vSphere, XenServer, AHV): where it goes, as what, and whether it may replace a file.
ExportOutput = Annotated[str, typer.Argument(help="Output file or smb://CONNECTOR/path")]
ExportFormat = Annotated[
    DiskFormat | None,
    typer.Option("--to", help="Output format (default: the share connector's disk_format, else vhdx)",
                 case_sensitive=False),
]
ReplaceOutput = Annotated[bool, typer.Option(help="Replace an existing output file")]
