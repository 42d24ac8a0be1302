"""Session fixtures: the real services the suite runs against, all on 127.0.0.1.

A service that cannot start fails the tests that need it (ServiceUnavailable),
never skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Before anything imports Prefect or libguestfs.
os.environ.update(
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY="false",
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    LIBGUESTFS_BACKEND="direct",
    LIBGUESTFS_BACKEND_SETTINGS="force_tcg",
)

import pytest

from tests.infra import services
from tests.infra.services import CACHE, REPO, Service
from tests.infra.shared import built_once

os.environ.setdefault("LIBGUESTFS_CACHEDIR", str(CACHE / "guestfs"))
Path(os.environ["LIBGUESTFS_CACHEDIR"]).mkdir(parents=True, exist_ok=True)

# Under pytest-xdist every worker is its own Prefect client process: give each its own PREFECT_HOME
# (profiles, local result storage, an ephemeral server's SQLite) so two workers never share one.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _home = Path(os.environ.get("PREFECT_HOME") or CACHE / "prefect-home")
    os.environ["PREFECT_HOME"] = str(_home / f"xdist-{_WORKER}")
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def _running(start) -> Iterator[Service]:  # type: ignore[no-untyped-def]
    service = start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def samba() -> Iterator[Service]:
    yield from _running(services.start_samba)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Service]:
    yield from _running(services.start_azurite)


@pytest.fixture(scope="session")
def vcsim() -> Iterator[Service]:
    yield from _running(services.start_vcsim)


@pytest.fixture(scope="session")
def qemu_img() -> str:
    return services.require_tool("qemu-img", "deps")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Prefect server (test harness) for the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture()
def cli_env(prefect_api: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the real ``imageport`` console script against the test server."""
    env = dict(os.environ, PREFECT_API_URL=prefect_api, PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("PREFECT_API_KEY", None)
    return env


@pytest.fixture(scope="session")
def imageport_bin() -> str:
    found = shutil.which("imageport") or str(REPO / ".venv/bin/imageport")
    return services.require_tool(found, "venv")


@pytest.fixture()
def run_cli(imageport_bin: str, cli_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run ``imageport ARGS``; returns the CompletedProcess (text mode)."""

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [imageport_bin, *args], input=stdin, capture_output=True, text=True, env=cli_env, timeout=timeout
        )

    return run


ARM_TENANT = "00000000-0000-4000-8000-0000000000aa"
ARM_CLIENT = "00000000-0000-4000-8000-0000000000bb"
ARM_SECRET = "stand-in-client-secret"
ARM_SUBSCRIPTION = "00000000-0000-4000-8000-0000000000cc"


@pytest.fixture(scope="session")
def arm(azurite, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The Azure Resource Manager stand-in over HTTPS, data in Azurite; clients trust its certificate."""
    from azure.storage.blob import BlobServiceClient

    from tests.infra.arm_standin import ArmStandIn

    blobs = BlobServiceClient.from_connection_string(azurite.info["connection_string"])
    standin = ArmStandIn(
        tmp_path_factory.mktemp("arm"),
        blobs,
        ARM_TENANT,
        ARM_CLIENT,
        ARM_SECRET,
        ARM_SUBSCRIPTION,
        {"rg-vdi": "westeurope"},
    )
    # The connector's CE subnet is the one the posture policy allows (tests use vnet-ce/default in rg-vdi).
    standin.vms.allowed_subnets.add(
        f"/subscriptions/{ARM_SUBSCRIPTION}/resourceGroups/rg-vdi/providers/Microsoft.Network/"
        "virtualNetworks/vnet-ce/subnets/default"
    )
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(standin.cert)  # azure-core and MSAL verify TLS through requests
    try:
        yield standin
    finally:
        standin.close()
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous


XAPI_USER, XAPI_PASSWORD = "root", "stand-in-xapi-password"


@pytest.fixture(scope="session")
def xapi(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The XenServer pool stand-in (XML-RPC + /export_raw_vdi over HTTPS); ``localhost`` is a pool member."""
    from tests.infra.xapi_standin import XapiStandIn

    standin = XapiStandIn(tmp_path_factory.mktemp("xapi"), XAPI_USER, XAPI_PASSWORD, master_address="127.0.0.1",
                          member_addresses=("localhost",))  # fmt: skip
    yield standin
    standin.close()


@pytest.fixture()
def azure_settings(arm) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Settings of an Azure connector pointed at the stand-in (service principal)."""
    return {
        "tenant_id": ARM_TENANT,
        "client_id": ARM_CLIENT,
        "client_secret": ARM_SECRET,
        "subscription_id": ARM_SUBSCRIPTION,
        "resource_group": "rg-vdi",
        "location": "westeurope",
        "arm_endpoint": arm.url,
        "authority_host": arm.url,
        **ce_storage_settings(arm),
    }


def azure_cli_args(settings: dict[str, str]) -> list[str]:
    """``key=value`` arguments of ``connector create azure`` for these settings, without the secrets (the CLI
    refuses a secret on its command line: the client secret goes to standard input). The CE storage account,
    whose key is a secret too, is left out: no CLI test's connector runs a compositing engine."""
    left_out = ("client_secret", "ce_storage_account_url", "ce_storage_account_key")
    return [f"{k}={v}" for k, v in settings.items() if k not in left_out]


def ce_storage_settings(arm) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The CE storage account of an Azure connector: Azurite's account (bundle, job and result blobs)."""
    return {"ce_storage_account_url": arm.blobs.url, "ce_storage_account_key": arm.blobs.credential.account_key}


@pytest.fixture(scope="session")
def windows_disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Windows-like test disks (tests/infra/windows_image.py), built in one appliance launch per session."""
    from tests.infra.windows_image import KINDS, build_disks

    # Read-only for every test (they copy what they change): under xdist the first worker builds, the other reuses.
    directory = built_once(tmp_path_factory, "windows", build_disks)
    return {kind: directory / f"{kind}.img" for kind in KINDS}


def _vsphere_ce_session(vcsim):  # type: ignore[no-untyped-def]
    """A logged-in session on the simulator, set up to host compositing engines (template DC0_H0_VM1)."""
    from tests.infra.configs import vcsim_vsphere

    session = vcsim_vsphere(vcsim, datastore="LocalDS_0", ce_template="DC0_H0_VM1").build()
    session.connect()
    yield session
    session.close()


@pytest.fixture()
def ce_session(vcsim):  # type: ignore[no-untyped-def]
    yield from _vsphere_ce_session(vcsim)


@pytest.fixture(scope="module")
def ce_session_factory(vcsim):  # type: ignore[no-untyped-def]
    return lambda: _vsphere_ce_session(vcsim)


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _launches_an_appliance(item: pytest.Item) -> bool:
    return item.get_closest_marker("guestfs") is not None or "windows_disks" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, files longest first (``tests/infra/file_costs.json``, seconds per file of a full run;
    a file not in it: a minute per appliance-launching test, a second per other test), so that no long
    file is left for last while the other worker idles; the longest file that launches no appliance
    second, so the second worker has work while the first builds the shared Windows disks. Every
    worker sorts alike (their collections must match); ``make test`` passes ``--no-loadscope-reorder``
    so the scheduler keeps this order."""
    if not _WORKER:
        return
    known = json.loads((REPO / "tests/infra/file_costs.json").read_text())
    estimate: dict[str, float] = {}
    launches: dict[str, int] = {}
    for item in items:
        heavy = _launches_an_appliance(item)
        launches[_file(item)] = launches.get(_file(item), 0) + heavy
        estimate[_file(item)] = estimate.get(_file(item), 0.0) + (60.0 if heavy else 1.0)
    order = sorted(estimate, key=lambda name: -float(known.get(name, estimate[name])))
    light = [name for name in order if not launches[name]]
    if light and order[0] != light[0]:
        order.remove(light[0])
        order.insert(1, light[0])
    rank = {name: index for index, name in enumerate(order)}
    items.sort(key=lambda item: rank[_file(item)])  # stable: the order inside a file is kept


@pytest.fixture(scope="module")
def scale_out_lab(samba, azurite, arm, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """docs/operations.md's scale-out topology (tests/infra/scale_out.py): PostgreSQL, a Prefect server on it,
    every deployment in the ``imageport`` process pool, shared result storage, and two process workers on hosts
    of their own (network namespaces) reaching the server, Samba, Azurite and the ARM stand-in over their veths."""
    from tests.infra.scale_out import scale_out

    with scale_out(tmp_path_factory.mktemp("scale-out"), ports=[samba.port, azurite.port, arm.port]) as topology:
        yield topology
