"""``imageport connector ...`` end to end: the installed console script, the test
Prefect server, the suite's Samba and vCenter simulator."""

from __future__ import annotations

import json
import os

import pytest

from tests.infra.services import free_port

pytestmark = pytest.mark.integration


def smb_settings(samba, **overrides) -> list[str]:  # type: ignore[no-untyped-def]
    fields = {
        "server": "127.0.0.1",
        "port": str(samba.port),
        "share": "share",
        "username": samba.info["username"],
        "base_path": "cli",
    }
    fields.update(overrides)
    return [f"{k}={v}" for k, v in fields.items()]


def test_fileshare_connector_create_test_show_list_delete(run_cli, samba) -> None:  # type: ignore[no-untyped-def]
    created = run_cli(
        "connector", "create", "fileshare", "lab-share", *smb_settings(samba), stdin=samba.info["password"] + "\n"
    )
    assert created.returncode == 0, created.stderr
    assert samba.info["password"] not in created.stdout + created.stderr

    tested = run_cli("connector", "test", "lab-share")
    assert tested.returncode == 0, tested.stderr
    assert "logged in" in tested.stdout and "writable" in tested.stdout
    assert os.path.isdir(os.path.join(samba.info["share_dir"], "cli"))

    shown = run_cli("connector", "show", "lab-share", "--json")
    data = json.loads(shown.stdout)
    assert data["kind"] == "fileshare" and data["settings"]["password"] == "********"
    assert data["settings"]["port"] == samba.port

    listed = json.loads(run_cli("connector", "list", "--json").stdout)
    assert {"kind": "fileshare", "name": "lab-share"} in listed

    assert run_cli("connector", "delete", "lab-share").returncode == 0
    gone = run_cli("connector", "show", "lab-share")
    assert gone.returncode == 1 and "no connector named 'lab-share'" in gone.stderr


def test_fileshare_wrong_password_fails_clearly_without_echoing_it(run_cli, samba) -> None:  # type: ignore[no-untyped-def]
    assert (
        run_cli(
            "connector", "create", "fileshare", "bad-pass", *smb_settings(samba), stdin="Wrong-Pass-999\n"
        ).returncode
        == 0
    )
    result = run_cli("connector", "test", "bad-pass")
    assert result.returncode == 1
    assert "access denied" in result.stderr and "LogonFailure" in result.stderr
    assert "Wrong-Pass-999" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_fileshare_unreachable_host_fails_clearly(run_cli) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    assert (
        run_cli(
            "connector",
            "create",
            "fileshare",
            "dead-share",
            "server=127.0.0.1",
            f"port={port}",
            "share=s",
            "username=u",
            stdin="p\n",
        ).returncode
        == 0
    )
    result = run_cli("connector", "test", "dead-share")
    assert result.returncode == 1 and f"127.0.0.1:{port}" in result.stderr and "cannot connect" in result.stderr


def test_vsphere_connector_against_the_simulator(run_cli, vcsim) -> None:  # type: ignore[no-untyped-def]
    base = [
        "host=127.0.0.1",
        f"port={vcsim.port}",
        f"username={vcsim.info['username']}",
        "verify_tls=false",
        "datastore=LocalDS_0",
    ]
    assert (
        run_cli("connector", "create", "vsphere", "lab-vc", *base, stdin=vcsim.info["password"] + "\n").returncode == 0
    )
    ok = run_cli("connector", "test", "lab-vc", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    assert (
        run_cli("connector", "create", "vsphere", "lab-vc", *base, "--overwrite", stdin="not-the-password\n").returncode
        == 0
    )
    bad = run_cli("connector", "test", "lab-vc")
    assert bad.returncode == 1 and "refused the user name or password" in bad.stderr

    base[1] = f"port={free_port()}"
    assert run_cli("connector", "create", "vsphere", "dead-vc", *base, stdin="x\n").returncode == 0
    dead = run_cli("connector", "test", "dead-vc")
    assert dead.returncode == 1 and "cannot reach vCenter" in dead.stderr


def test_local_connector_and_bad_input_messages(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "images"
    assert run_cli("connector", "create", "local", "here", f"root={root}").returncode == 0
    assert run_cli("connector", "test", "here").returncode == 0 and root.is_dir()

    unknown_kind = run_cli("connector", "create", "nfs", "x")
    assert unknown_kind.returncode == 2 and "unknown connector kind 'nfs'" in unknown_kind.stderr
    bad_field = run_cli("connector", "create", "local", "y", "rooot=/tmp")
    assert bad_field.returncode == 2 and "'rooot' is not a local connector setting" in bad_field.stderr
    bad_port = run_cli(
        "connector", "create", "fileshare", "z", "server=a", "share=s", "username=u", "port=70000", stdin="p\n"
    )
    assert bad_port.returncode == 2 and "port:" in bad_port.stderr
    bad_name = run_cli("connector", "create", "local", "Bad_Name", "root=/tmp")
    assert bad_name.returncode == 2 and "not a valid connector name" in bad_name.stderr


def test_secrets_come_from_a_prompt_stdin_a_file_or_the_environment_never_argv(  # type: ignore[no-untyped-def]
    run_cli, cli_env, samba, tmp_path
) -> None:
    password = samba.info["password"]
    for kind, field, settings in (
        ("fileshare", "password", smb_settings(samba)),
        ("azure", "client_secret", ["tenant_id=t", "client_id=c", "subscription_id=s", "resource_group=rg"]),
        ("vsphere", "password", ["host=vc", "username=u", "verify_tls=false"]),
    ):
        refused = run_cli("connector", "create", kind, "from-argv", *settings, f"{field}=Literal-Secret-31337")
        assert refused.returncode == 2, refused.stderr
        assert f"{field}: a secret is not accepted on the command line" in refused.stderr
        assert f"{field}=-" in refused.stderr and f"{field}=@PATH" in refused.stderr
        assert f"{field}=env:VARIABLE" in refused.stderr
        assert "Literal-Secret-31337" not in refused.stdout + refused.stderr
    assert run_cli("connector", "show", "from-argv").returncode == 1  # nothing was saved

    secret_file = tmp_path / "pw"
    secret_file.write_text(password + "\n")
    from_file = run_cli("connector", "create", "fileshare", "pw-file", *smb_settings(samba), f"password=@{secret_file}")
    assert from_file.returncode == 0, from_file.stderr
    tested = run_cli("connector", "test", "pw-file")
    assert tested.returncode == 0 and "logged in" in tested.stdout, tested.stderr

    cli_env["SHARE_PASSWORD"] = password
    from_env = run_cli(
        "connector", "create", "fileshare", "pw-env", *smb_settings(samba), "password=env:SHARE_PASSWORD"
    )
    assert from_env.returncode == 0, from_env.stderr
    assert run_cli("connector", "test", "pw-env").returncode == 0

    unset = run_cli("connector", "create", "fileshare", "pw-unset", *smb_settings(samba), "password=env:NO_SUCH_VAR")
    assert unset.returncode == 2 and "password=env:NO_SUCH_VAR: that environment variable is not set" in unset.stderr
    missing = run_cli("connector", "create", "fileshare", "pw-none", *smb_settings(samba), "password=@/no/such/file")
    assert missing.returncode == 2 and "password=@/no/such/file: cannot read the file" in missing.stderr


def test_credentials_inside_a_host_field_are_refused_and_never_echoed(run_cli, samba) -> None:  # type: ignore[no-untyped-def]
    embedded = smb_settings(samba, server="svc:Embedded-Pw-77@127.0.0.1")
    refused = run_cli("connector", "create", "fileshare", "in-host", *embedded, stdin=samba.info["password"] + "\n")
    assert refused.returncode == 2 and "server: a host name cannot hold '@'" in refused.stderr
    assert "Embedded-Pw-77" not in refused.stdout + refused.stderr
    url = run_cli(
        "connector", "create", "azure", "in-url", "auth=default", "subscription_id=s", "resource_group=rg",
        "arm_endpoint=https://app:Embedded-Pw-77@management.azure.com",
    )  # fmt: skip
    assert url.returncode == 2 and "arm_endpoint: a URL with user:password@ is refused" in url.stderr
    assert "Embedded-Pw-77" not in url.stdout + url.stderr


def test_a_saved_connector_with_credentials_in_its_host_is_refused_not_echoed(run_cli, samba) -> None:  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    from blocks.connectors import FileShareConnector

    legacy = FileShareConnector.model_construct(  # saved before hosts were checked: no validation
        server="svc:Embedded-Pw-78@127.0.0.1", port=samba.port, share="share", username="u", password=SecretStr("x")
    )
    legacy.save("legacy-host", overwrite=True)
    try:
        for args in (("test", "legacy-host"), ("show", "legacy-host", "--json")):
            done = run_cli("connector", *args)
            assert done.returncode == 2 and "server: a host name cannot hold '@'" in done.stderr, done.stderr
            assert "Embedded-Pw-78" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    finally:  # it cannot be loaded, so no later test's clean-up could delete it: remove the document itself
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            slug = FileShareConnector.get_block_type_slug()
            client.delete_block_document(client.read_block_document_by_name("legacy-host", slug).id)


def test_blob_connector_lists_its_container_with_the_sas_and_never_shows_it(run_cli, azurite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A blob connector (installers from a container): the SAS from a file, a real listing as its test, the SAS in
    no output; a SAS Azure refuses is one line, exit 1; a URL with a query string is bad input, exit 2."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    blobs = BlobServiceClient.from_connection_string(azurite.info["connection_string"])
    container = blobs.create_container("cli-installers")
    container.upload_blob("pvs/PVS_Device_x64.exe", b"MZ")
    sas = generate_container_sas(blobs.account_name, "cli-installers", account_key=blobs.credential.account_key,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    (tmp_path / "good.sas").write_text(sas + "\n")
    (tmp_path / "forged.sas").write_text(sas.replace("sig=", "sig=AAAA") + "\n")
    url = f"container_url={blobs.url.rstrip('/')}/cli-installers"
    created = run_cli("connector", "create", "blob", "cli-blob", url, f"sas=@{tmp_path / 'good.sas'}")
    assert created.returncode == 0, created.stderr
    tested = run_cli("connector", "test", "cli-blob")
    assert tested.returncode == 0 and "cli-installers: 0 blob(s) at the top, SAS accepted" in tested.stdout
    shown = run_cli("connector", "show", "cli-blob", "--json")
    signature = sas.split("sig=")[1].split("&")[0]
    assert signature[:10] not in shown.stdout + tested.stdout + created.stdout
    assert run_cli("connector", "create", "blob", "cli-forged", url, f"sas=@{tmp_path / 'forged.sas'}").returncode == 0
    refused = run_cli("connector", "test", "cli-forged")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "cli-installers" in refused.stderr and "AAAA" not in refused.stderr
    queried = run_cli("connector", "create", "blob", "cli-q", f"{url}?{sas}", f"sas=@{tmp_path / 'good.sas'}")
    assert queried.returncode == 2 and "without a query string" in queried.stderr and signature not in queried.stderr
    for name in ("cli-blob", "cli-forged"):
        run_cli("connector", "delete", name)
