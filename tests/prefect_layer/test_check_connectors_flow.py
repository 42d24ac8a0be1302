"""The check-connectors flow against the test Prefect server, real Samba and a local dir."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from blocks.registry import delete_connector, list_connectors, save_connector
from flows.check_connectors import check_connectors
from imageport.errors import InputError, StorageAccessDenied, StorageUnreachable
from tasks.connectors import check_connector
from tasks.policy import is_transient
from tests.infra.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture()
def clean_connectors(prefect_api: str):  # type: ignore[no-untyped-def]
    yield
    for _kind, name in list_connectors():
        delete_connector(name)


def test_only_transient_errors_are_retried() -> None:
    assert is_transient(StorageUnreachable("x"))
    assert not is_transient(StorageAccessDenied("x"))
    assert not is_transient(InputError("x"))
    assert not is_transient(RuntimeError("x"))


def test_a_task_retries_only_a_transient_error_the_core_did_not_retry(prefect_api: str) -> None:
    from prefect import flow, task

    from imageport.retry import RetryPolicy
    from tasks.policy import RETRY_TRANSIENT

    runs = {"core-retried": 0, "not-retried": 0}
    core_attempts = []

    @task(**{**RETRY_TRANSIENT, "retry_delay_seconds": 0})
    def stage(kind: str) -> None:
        runs[kind] += 1

        def dropped() -> None:
            core_attempts.append(kind)
            raise StorageUnreachable(f"{kind}: the session dropped")

        if kind == "core-retried":  # a fault inside a stage: the core's policy retries it, then gives up
            RetryPolicy(attempts=3, first_delay=1).run(dropped, sleep=lambda s: None)
        dropped()  # e.g. a login before the stage began: nothing in the core retried it

    @flow
    def port(kind: str) -> None:
        stage(kind)

    for kind in runs:
        assert port(kind, return_state=True).is_failed()
    # One fault costs one policy's attempts: 3 in the core and no task retry, not 3 x 4.
    assert runs == {"core-retried": 1, "not-retried": 1 + len(RETRY_TRANSIENT["retry_delay_seconds"])}
    assert core_attempts.count("core-retried") == 3


def test_flow_reports_each_connector_and_fails_when_one_fails(samba, tmp_path, clean_connectors) -> None:  # type: ignore[no-untyped-def]
    smb = {"server": "127.0.0.1", "port": samba.port, "share": "share", "username": samba.info["username"]}
    save_connector("fileshare", "good-share", {**smb, "password": samba.info["password"]})
    save_connector("fileshare", "bad-share", {**smb, "password": "wrong"})
    save_connector("local", "local-dir", {"root": str(tmp_path / "d")})

    state = check_connectors(return_state=True)
    assert state.is_failed() and "bad-share" in state.message
    report = {r["name"]: r for r in state.result(raise_on_failure=False)}
    assert report["good-share"]["ok"] and report["local-dir"]["ok"]
    assert not report["bad-share"]["ok"] and "access denied" in report["bad-share"]["error"]

    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts(limit=50)
    table = next(a for a in artifact if a.key == "connector-check").data
    assert "| good-share | fileshare | ok |" in table and "| bad-share | fileshare | FAILED |" in table


def test_unreachable_share_is_retried_then_fails(clean_connectors) -> None:  # type: ignore[no-untyped-def]
    save_connector(
        "fileshare",
        "gone-share",
        {"server": "127.0.0.1", "port": free_port(), "share": "s", "username": "u", "password": "p"},
    )
    quick = check_connector.with_options(retries=2, retry_delay_seconds=0)
    state = quick(name="gone-share", return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        run = client.read_task_run(state.state_details.task_run_id)
    assert run.run_count == 3  # first attempt + 2 retries


def test_wrong_password_is_not_retried(samba, clean_connectors) -> None:  # type: ignore[no-untyped-def]
    save_connector(
        "fileshare",
        "denied-share",
        {"server": "127.0.0.1", "port": samba.port, "share": "share", "username": "imgtest", "password": "nope"},
    )
    state = check_connector.with_options(retries=2, retry_delay_seconds=0)(name="denied-share", return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_task_run(state.state_details.task_run_id)
    assert state.is_failed() and run.run_count == 1
