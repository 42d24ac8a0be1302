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
