"""Suite-wide: planted secrets never leave the process, whatever the edge.

Known secrets are planted in connectors (a file-share password, an Azure client secret, a vSphere
password, also wrong ones so that failures are exercised) and in SAS URLs; then the CLI commands
and flows run, and every stdout/stderr, log record (with the SDKs' loggers at DEBUG), run log in
the Prefect API, artifact, result, persisted result file, sidecar file and exception string is
searched for any form of them (``tests/infra/secrets.py``).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARM_SECRET, azure_cli_args
from tests.core.disks.images import MiB, make_raw
from tests.infra.secrets import LogRecorder, assert_no_secret_in, assert_no_secret_in_files, sas_signature
from tests.infra.services import AZURITE_ACCOUNT, AZURITE_KEY, REPO

pytestmark = pytest.mark.integration

SHARE_WRONG = "Planted-Share-Secret-5150"
VC_WRONG = "Planted-Vc-Secret-8086"
MALFORMED_SIG = "PlantedMalformedSig0042"


def _sas_blob(azurite: Any, size: int) -> str:
    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    service = BlobServiceClient.from_connection_string(azurite.info["connection_string"])
    container = service.create_container(f"leaks-{uuid.uuid4().hex[:8]}")
    name = "disk.vhd"
    container.get_blob_client(name).create_page_blob(size=size)
    sas = generate_blob_sas(
        AZURITE_ACCOUNT,
        container.container_name,
        name,
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(read=True, write=True),
        expiry=datetime.now(UTC) + timedelta(minutes=30),
    )
    return f"{container.url}/{name}?{sas}"


@pytest.fixture()
def debug_sdk_logs():  # type: ignore[no-untyped-def]
    """The SDK loggers at DEBUG (urllib3 logs every URL, azure-core every request): the worst case."""
    names = ("urllib3", "azure", "smbprotocol", "msal", "prefect")
    previous = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def test_cli_commands_never_show_a_planted_secret(  # type: ignore[no-untyped-def]
    run_cli, cli_env, samba, vcsim, arm, azure_settings, azurite, tmp_path: Path
) -> None:
    from imageport.disks.convert import convert
    from imageport.models import DiskFormat

    sas = _sas_blob(azurite, 8 * MiB + 512)
    secrets = [samba.info["password"], SHARE_WRONG, VC_WRONG, ARM_SECRET, sas_signature(sas), MALFORMED_SIG]
    secrets.append(sas.split("sig=")[1].split("&")[0])  # the signature as it is written in the URL
    outputs: list[str] = []

    def cli(*args: str, stdin: str | None = None, rc: int = 0) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, stdin=stdin)
        outputs.extend((done.stdout, done.stderr))
        assert done.returncode == rc, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    pw_file = tmp_path / "share.pw"
    pw_file.write_text(samba.info["password"] + "\n")
    cli_env["LEAK_TEST_SHARE_PW"] = SHARE_WRONG
    share = ["server=127.0.0.1", f"port={samba.port}", "share=share", f"username={samba.info['username']}"]
    cli("connector", "create", "fileshare", "leak-share", *share, "base_path=leaks", f"password=@{pw_file}")
    cli("connector", "create", "fileshare", "leak-bad", *share, "password=env:LEAK_TEST_SHARE_PW")
    azure = azure_cli_args(azure_settings)
    cli("connector", "create", "azure", "leak-az", *azure, "--json", stdin=ARM_SECRET + "\n")
    vc = ["host=127.0.0.1", f"port={vcsim.port}", "username=user", "verify_tls=false"]
    cli("connector", "create", "vsphere", "leak-vc", *vc, "password=-", stdin=VC_WRONG + "\n")
    cli("connector", "list")
    cli("connector", "list", "--json")
    for name in ("leak-share", "leak-bad", "leak-az", "leak-vc"):
        cli("connector", "show", name)
        cli("connector", "show", name, "--json")
    cli("connector", "test", "leak-share")
    cli("connector", "test", "leak-az", "--json")
    cli("connector", "test", "leak-bad", rc=1)
    cli("connector", "test", "leak-vc", rc=1)
    cli("connector", "create", "fileshare", "leak-argv", *share, f"password={SHARE_WRONG}", rc=2)

    work = tmp_path / "work"  # everything the commands write (the password file stays outside)
    work.mkdir()
    raw = make_raw(work / "gold.raw", 8 * MiB, runs=2, seed=7, max_run=MiB)
    vhdx = work / "gold.vhdx"
    convert(raw, vhdx, DiskFormat.VHDX)
    cli("upload", str(vhdx), "-", "--checkpoint-dir", str(work / "cp"), stdin=f"sas+{sas}\n")
    cli("disk", "info", f"sas+{sas}")
    cli("disk", "info", f"sas+{sas}", "--json")
    cli("disk", "check", f"sas+{sas}")
    cli("disk", "check", f"sas+{sas}", "--json")
    cli("disk", "hash", f"sas+{sas}")
    cli("disk", "convert", f"sas+{sas}", str(work / "back.vhdx"), "--to", "vhdx")
    cli("disk", "convert", f"sas+{sas}", "smb://leak-share/back.vhdx", "--to", "vhdx")
    malformed = f"sas+http:///c/b?sv=1&sig={MALFORMED_SIG}"
    cli("disk", "info", malformed, rc=2)
    cli("upload", str(vhdx), "-", stdin=malformed + "\n", rc=2)
    cli("upload", str(vhdx), sas, rc=2)  # a bare URL is refused, without repeating it

    assert any("REDACTED" in text for text in outputs)  # the SAS was named, and redacted
    assert_no_secret_in(secrets, *outputs, where="cli output")
    assert_no_secret_in_files(secrets, work, Path(samba.info["share_dir"]) / "leaks")


def test_a_crashing_command_prints_a_redacted_traceback(cli_env) -> None:  # type: ignore[no-untyped-def]
    sas = f"https://acct.blob.core.windows.net/c/b?sv=1&sig={MALFORMED_SIG}"
    code = (
        "import sys\n"
        "import cli.disk\n"
        "from cli.main import app\n"
        "from imageport.redaction import register_secret\n"
        f"register_secret({SHARE_WRONG!r})\n"
        "def crash(*a, **k):\n"
        f"    raise RuntimeError('unexpected: {sas} with {SHARE_WRONG}, https://svc:{VC_WRONG}@vc/sdk')\n"
        "cli.disk.open_disk = crash\n"
        "app(['disk', 'info', sys.executable])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, cwd=REPO, timeout=120
    )
    assert done.returncode == 1 and "Traceback" in done.stderr and "RuntimeError: unexpected" in done.stderr
    assert_no_secret_in([MALFORMED_SIG, SHARE_WRONG, VC_WRONG], done.stdout, done.stderr, where="traceback")


def test_flows_never_log_store_or_raise_a_planted_secret(  # type: ignore[no-untyped-def]
    prefect_api, arm, azure_settings, samba, debug_sdk_logs, monkeypatch, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    from blocks.registry import save_connector
    from flows.publish_vdisk import publish_vdisk_flow
    from flows.upload_image import upload_image_flow
    from imageport.models import PublishSpec, UploadSpec
    from imageport.transfer import pages

    granted: list[str] = []
    grant = arm.grant

    def recording_grant(*args: Any, **kwargs: Any) -> Any:
        status, body, operation = grant(*args, **kwargs)
        disk = arm.table(kwargs.get("kind", "disks"))[f"{args[0].lower()}/{args[1].lower()}"]
        if disk.get("sas"):
            granted.append(dict(p.split("=", 1) for p in disk["sas"].split("&"))["sig"])
        return status, body, operation

    monkeypatch.setattr(arm, "grant", recording_grant)
    monkeypatch.setattr(pages, "DEFAULT_CHECKPOINTS", tmp_path / "checkpoints")
    save_connector("local", "leak-staging", {"root": str(tmp_path)}, overwrite=True)
    save_connector("azure", "leak-flow-az", azure_settings, overwrite=True)
    share = {"server": "127.0.0.1", "port": samba.port, "share": "share", "username": samba.info["username"]}
    store = save_connector(
        "fileshare",
        "leak-store",
        {**share, "password": samba.info["password"], "base_path": "leak-pvs"},
        overwrite=True,
    ).build()
    with store:
        store.makedirs("Store")
    save_connector("fileshare", "leak-flow-bad", {**share, "password": SHARE_WRONG}, overwrite=True)
    make_raw(tmp_path / "gold.raw", 20 * MiB, runs=2, seed=9, max_run=MiB)  # Azure's smallest upload
    source = {"kind": "local", "connector": "leak-staging", "path": "gold.raw"}
    to_azure = {"kind": "azure-disk", "connector": "leak-flow-az", "resource_group": "rg-vdi", "name": "leakdisk"}
    publish = {
        "source": source, "store": {"kind": "share", "connector": "leak-store", "path": "Store"},
        "name": "LeakGold", "pvs_site": "Site1", "pvs_store": "Store1",
    }  # fmt: skip
    from_bad_share = {"kind": "share", "connector": "leak-flow-bad", "path": "gold.vhdx"}

    states = []
    with LogRecorder() as recorder:
        states.append(
            upload_image_flow(UploadSpec.model_validate({"source": source, "target": to_azure}), return_state=True)
        )
        states.append(publish_vdisk_flow(PublishSpec.model_validate(publish), return_state=True))
        failing = UploadSpec.model_validate({"source": from_bad_share, "target": {**to_azure, "name": "never"}})
        states.append(upload_image_flow(failing, return_state=True))
        for handler in logging.getLogger("prefect.flow_runs").handlers:
            if isinstance(handler, APILogHandler):
                handler.flush()  # the run logs reach the API (the UI) before they are read back
    assert states[0].is_completed() and states[1].is_completed() and states[2].is_failed(), [s.message for s in states]
    assert granted, "the upload used a write grant (a SAS)"
    secrets = [samba.info["password"], SHARE_WRONG, ARM_SECRET, *granted]

    texts: list[str] = [*recorder.lines]
    for state in states:
        texts.append(str(state.message))
        texts.append(json.dumps(state.result(raise_on_failure=False), default=str))
    with get_client(sync_client=True) as client:
        ids = [state.state_details.flow_run_id for state in states]
        texts.extend(log.message for log in client.read_logs() if log.flow_run_id in ids)
        texts.extend(str(a.data) + str(a.description) for a in client.read_artifacts() if a.flow_run_id in ids)
    # The failure is an expected refusal: logged and stated as its one line, with no traceback (issue 23).
    assert states[2].message and not any("Traceback" in text for text in texts)
    assert_no_secret_in(secrets, *texts, where="flow output")
    share_dir = Path(samba.info["share_dir"]) / "leak-pvs"
    assert (share_dir / "Store" / "LeakGold.imageport.json").exists()
    assert_no_secret_in_files(secrets, tmp_path, share_dir, Path(PREFECT_LOCAL_STORAGE_PATH.value()))
