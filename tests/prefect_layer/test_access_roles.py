"""Roles in front of Prefect (issue 19), against ``imageport server`` as operators run it, one user per role.

Every route of the running server's own OpenAPI document is called as each role and must be allowed or
denied exactly as the allow-list says (a route nobody listed: denied to porters and workers); a porter
starts and stops runs (tagged with their name, shown by ``imageport jobs show``) that ``imageport
serve``, running as the worker user, executes; a porter cannot read a planted connector secret by any
route, nor create, change or delete a connector or a deployment. Headless Chromium (one session per
role, on the same server) logs in through the UI's form; an administrator saves a connector's edit page,
a porter starts ``mcs-to-mcs`` from its run form, meets no error toast on the pages it uses, and is
refused a connector's edit page.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deployments.automations import HEARTBEAT_TAG
from imageport.access.allow_list import POLICY
from imageport.access.audit import mutates
from imageport.access.policy import Request
from imageport.access.roles import Role
from imageport.access.routes import PARAMETER, RouteIndex
from imageport.disks.convert import hash_disk
from tests.core.disks.images import MiB, make_raw
from tests.infra.browser import Form, chromium
from tests.infra.gated_server import NAMES, GatedServer, gated_server, served

pytestmark = pytest.mark.integration

ADMIN, PORTER, WORKER = Role.ADMINISTRATOR, Role.PORTER, Role.WORKER
SECRET = f"planted-{uuid.uuid4().hex}"
CONVERT = "convert-disk/convert"


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, imageport_bin: str) -> Iterator[GatedServer]:
    root = tmp_path_factory.mktemp("gated")
    with gated_server(root, imageport_bin) as server:
        admin = server.env(ADMIN, root / "admin-home")
        for args, stdin in (
            (["connector", "create", "local", "lab", f"root={root / 'lab'}"], None),
            (["connector", "create", "fileshare", "vault", "server=127.0.0.1", "share=s", "username=u"], SECRET + "\n"),
        ):
            done = subprocess.run([imageport_bin, *args], env=admin, input=stdin, capture_output=True, text=True,
                                  timeout=120)  # fmt: skip
            assert done.returncode == 0, done.stderr
        (root / "lab").mkdir()
        with served(server, imageport_bin, CONVERT):
            yield server


def cli(gate: GatedServer, role: Role | None, *args: str, home: str = "cli-home") -> subprocess.CompletedProcess[str]:
    """``imageport ARGS`` as ROLE (None: the porter's name with a wrong password)."""
    env = gate.env(role, gate.root / home)
    if role is None:
        env["PREFECT_API_AUTH_STRING"] = f"{NAMES[PORTER]}:wrong-password"
    return subprocess.run([gate.imageport, *args], env=env, capture_output=True, text=True, timeout=300)


def _filled(template: str) -> str:
    return PARAMETER.sub(lambda _: str(uuid.uuid4()), template)


def test_every_openapi_route_is_allowed_or_denied_per_role_as_the_allow_list_says(gate: GatedServer) -> None:
    document = gate.call(ADMIN, "GET", "/openapi.json").json()
    assert gate.call(PORTER, "GET", "/openapi.json").status_code == 403  # unlisted: the default is deny
    index = RouteIndex.from_openapi(document)
    listed_http = {key for key in POLICY.rules if key[0] != "WS"}
    assert listed_http - set(index.routes) == set(), "the allow-list names routes this Prefect does not have"
    allowed: dict[tuple[Role, str, str], bool] = {}
    for method, template in index.routes:
        path = _filled(template)
        body = b"[]" if method in ("POST", "PUT", "PATCH") else None  # no route creates anything from a list
        for role in Role:
            expected = all(POLICY.decide(role, Request(method, t, "", body)).allowed
                           for t in index.matching(method, path))  # fmt: skip
            response = gate.call(role, method, path, content=body, headers={"Content-Type": "application/json"})
            denied = response.status_code == 403 and "may not" in response.json().get("detail", "")
            assert response.status_code != 401, (role, method, path)
            assert denied is not expected, (role.value, method, template, response.status_code, response.text[:200])
            allowed[(role, method, template)] = not denied
    unlisted = set(index.routes) - set(POLICY.rules)
    assert unlisted, "Prefect has routes nobody listed (admin-only)"
    for method, template in unlisted:
        assert allowed[(ADMIN, method, template)]
        assert not allowed[(PORTER, method, template)] and not allowed[(WORKER, method, template)], template
    # Independent of the table: a porter's only state-changing call that a body of [] passes is starting a run
    # (stopping needs a cancel/retry state), and neither porters nor workers write blocks, pools or variables.
    porter_writes = {(m, t) for (r, m, t), ok in allowed.items() if r is PORTER and ok and mutates(m, t)}
    assert porter_writes == {("POST", "/deployments/{id}/create_flow_run")}
    for (role, method, template), ok in allowed.items():
        if role is not ADMIN and ok and mutates(method, template) and template != "/automations/owned-by/{resource_id}":
            assert not re.match(r"/(block_|work_pools/\{name\}$|variables|automations|admin|saved_searches)", template)


def _create_run(gate: GatedServer, role: Role, deployment: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = gate.call(role, "POST", f"/deployments/{deployment['id']}/create_flow_run", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_porter_starts_and_stops_runs_the_worker_runs_them_and_each_says_who(gate: GatedServer) -> None:
    lab = gate.root / "lab"
    make_raw(lab / "gold.raw", 16 * MiB, runs=3, seed=19)
    source = {"kind": "local", "connector": "lab", "path": "gold.raw"}
    convert = gate.call(PORTER, "GET", f"/deployments/name/{CONVERT}").json()
    # Started by REST as a porter, with a forged tag: the gateway keeps the caller's own tag, drops the forgery.
    run = _create_run(gate, PORTER, convert, tags=["imageport-by:ada", "mine"],
                      parameters={"source": source, "output": {**source, "path": "gold.vhdx"}})  # fmt: skip
    assert sorted(set(run["tags"]) - {HEARTBEAT_TAG}) == ["imageport-by:pat", "mine"]  # + the deployment's own
    waited = cli(gate, PORTER, "jobs", "wait", run["id"], "--timeout", "240")
    assert waited.returncode == 0, waited.stdout + waited.stderr + (gate.root / "serve.log").read_text()[-3000:]
    assert hash_disk(lab / "gold.vhdx").content_hash == hash_disk(lab / "gold.raw").content_hash
    shown = cli(gate, PORTER, "jobs", "show", run["id"])
    assert shown.returncode == 0 and "started by: pat" in shown.stdout, shown.stdout + shown.stderr
    # A port started as a porter (the UI's call, for an hour later), stopped by the porter: cancelled (exit 3).
    port = gate.call(PORTER, "GET", "/deployments/name/mcs-to-mcs/mcs-to-mcs").json()
    spec = {"workflow": "mcs-to-mcs", "source": source, "staging": {**source, "path": "staging.vhdx"},
            "targets": [{"disk": {**source, "path": "target.vhd"}}]}  # fmt: skip
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()  # stopped before the runner can pick it up
    port_id = _create_run(gate, PORTER, port, parameters={"spec": spec},
                          state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}})["id"]  # fmt: skip
    stopped = cli(gate, PORTER, "jobs", "stop", port_id)
    assert stopped.returncode == 0, stopped.stderr
    ended = cli(gate, PORTER, "jobs", "wait", port_id, "--timeout", "180")
    assert ended.returncode == 3, ended.stdout + ended.stderr
    assert "imageport-by:pat" in gate.call(PORTER, "GET", f"/flow_runs/{port_id}").json()["tags"]
    # A porter may not complete a run by hand (only cancel it or schedule a retry).
    done = gate.call(PORTER, "POST", f"/flow_runs/{port_id}/set_state", json={"state": {"type": "COMPLETED"}})
    assert done.status_code == 403
    # The server's audit log names who did what.
    audit = gate.log.read_text()
    assert f"imageport-audit user=pat role=porter POST /api/deployments/{convert['id']}/create_flow_run -> 201" in audit
    assert f"user=pat role=porter POST /api/flow_runs/{port_id}/set_state -> 201" in audit
    assert "imageport-audit denied user=pat role=porter POST /api/flow_runs/" in audit
    # The served worker ran the convert run; what serve and its runs read and update was not refused to it
    # (the route-table test above calls every route as a worker too: only these two are asserted here).
    refused = [line for line in audit.splitlines() if "denied" in line and "role=worker" in line
               and ("GET /api/admin/storage" in line or "PATCH /api/deployments/{id}:" in line)]  # fmt: skip
    assert "role=worker" in audit and not refused, refused


def _secret_free(response: Any) -> str:
    assert SECRET not in response.text
    return response.text


def test_a_porter_cannot_read_a_planted_secret_by_any_route(gate: GatedServer) -> None:
    vault = gate.call(PORTER, "GET", "/block_types/slug/imageport-fileshare/block_documents/name/vault")
    assert vault.status_code == 200 and _secret_free(vault)
    vault_id, schema_id = vault.json()["id"], vault.json()["block_schema_id"]
    secret_asks = [
        ("GET", f"/block_documents/{vault_id}?include_secrets=true", None),
        ("GET", f"/block_documents/{vault_id}?include_secrets=True&include_secrets=false", None),
        ("GET", f"/block_documents/{vault_id}?include_secrets=1", None),
        ("GET", "/block_types/slug/imageport-fileshare/block_documents/name/vault?include_secrets=yes", None),
        ("GET", "/block_types/slug/imageport-fileshare/block_documents?include_secrets=on", None),
        ("POST", "/block_documents/filter", {"include_secrets": True}),
        ("POST", "/block_documents/filter", {"include_secrets": "true"}),
        ("POST", "/block_documents/filter?include_secrets=true", {}),
    ]
    for method, path, body in secret_asks:
        response = gate.call(PORTER, method, path, json=body)
        assert response.status_code == 403 and _secret_free(response), (method, path)
    duplicate = b'{"include_secrets": false, "include_secrets": true}'
    response = gate.call(PORTER, "POST", "/block_documents/filter", content=duplicate)
    assert response.status_code == 403
    # Every read a porter may make, with real ids where it takes one: no secret in any answer.
    runs = gate.call(PORTER, "POST", "/flow_runs/filter", json={}).json()
    assert runs, "the run test ran first: logs and artifacts exist"
    # A keyed artifact for the by-key routes (progress artifacts have no key).
    artifacts = gate.call(PORTER, "POST", "/artifacts/filter", json={}).json()
    real = {"id": vault_id, "slug": "imageport-fileshare", "block_document_name": "vault", "checksum": "x",
            "key": next((a["key"] for a in artifacts if a.get("key")), "x")}  # fmt: skip
    reads = [("GET", f"/block_documents/{vault_id}"), ("GET", f"/block_schemas/{schema_id}"),
             ("GET", f"/flow_runs/{runs[0]['id']}/logs/download")]  # fmt: skip
    for (method, template), rule in POLICY.rules.items():
        if PORTER in rule.roles and method in ("GET", "POST") and not mutates(method, template):
            reads.append((method, PARAMETER.sub(lambda m: real.get(m.group(1), str(uuid.uuid4())), template)))
    for method, path in reads:
        response = gate.call(PORTER, method, path, json={} if method == "POST" else None)
        assert response.status_code != 403, (method, path)
        _secret_free(response)
    # The worker, whose flows load connectors, does read it.
    worker = gate.call(WORKER, "GET", f"/block_documents/{vault_id}?include_secrets=true")
    assert SECRET in worker.text


def test_a_porter_cannot_create_change_or_delete_connectors_or_deployments(gate: GatedServer) -> None:
    made = cli(gate, PORTER, "connector", "create", "local", "mine", f"root={gate.root}")
    assert made.returncode == 1 and "pat (porter) may not" in made.stderr, made.stdout + made.stderr
    assert len(made.stderr.strip().splitlines()) == 1
    vault = gate.call(ADMIN, "GET", "/block_types/slug/imageport-fileshare/block_documents/name/vault").json()
    deployment = gate.call(PORTER, "GET", f"/deployments/name/{CONVERT}").json()
    for method, path, body in (
        ("PATCH", f"/block_documents/{vault['id']}", {"data": {"share": "other"}}),
        ("DELETE", f"/block_documents/{vault['id']}", None),
        ("POST", "/block_documents/", {"name": "x", "data": {}, "block_schema_id": vault["block_schema_id"],
                                       "block_type_id": vault["block_type_id"]}),
        ("PATCH", f"/deployments/{deployment['id']}", {"description": "changed"}),
        ("DELETE", f"/deployments/{deployment['id']}", None),
        ("POST", "/deployments/", {"name": "x", "flow_id": deployment["flow_id"]}),
        ("POST", f"/deployments/{deployment['id']}/pause_deployment", None),
    ):  # fmt: skip
        assert gate.call(PORTER, method, path, json=body).status_code == 403, (method, path)
    assert gate.call(ADMIN, "GET", f"/block_documents/{vault['id']}").json()["data"]["share"] == "s"
    assert gate.call(ADMIN, "GET", f"/deployments/{deployment['id']}").status_code == 200
    # A wrong credential, and none at all: one line, exit 1.
    wrong = cli(gate, None, "jobs", "list")
    assert wrong.returncode == 1 and "refused the credential" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    anonymous = gate.env(None, gate.root / "anon-home")
    bare = subprocess.run([gate.imageport, "jobs", "list"], env=anonymous, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 1 and "a credential is required" in bare.stderr, bare.stderr


def test_a_server_without_users_stays_on_loopback(tmp_path: Path, imageport_bin: str) -> None:
    refused = subprocess.run([imageport_bin, "server", "--host", "0.0.0.0", "--file", str(tmp_path / "none.json")],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "refusing to serve on 0.0.0.0 without users" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_porter_starts_a_port_from_a_spec_file_that_leaves_options_out(gate: GatedServer) -> None:
    """What the deployment's schema accepts is sent (no ``format: null``): the server no longer says 409."""
    spec = gate.root / "port.yaml"
    spec.write_text("source: {kind: local, connector: lab, path: absent.raw}\n"
                    "staging: {kind: local, connector: lab, path: staging.vhdx}\n"
                    "targets: [{disk: {kind: local, connector: lab, path: absent.vhd}}]\n")  # fmt: skip
    started = cli(gate, PORTER, "port", "mcs-to-mcs", "--spec", str(spec))
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = re.search(r"run ([0-9a-f-]{36})", started.stdout).group(1)  # type: ignore[union-attr]
    run = gate.call(PORTER, "GET", f"/flow_runs/{run_id}").json()
    assert "imageport-by:pat" in run["tags"]
    assert run["parameters"]["spec"]["export"]["timeout_s"] == 7200  # the model's defaults, filled


def test_a_porter_reads_the_server_settings_cut_down_to_what_the_ui_needs(gate: GatedServer) -> None:
    full = gate.call(ADMIN, "GET", "/admin/settings").json()
    assert {"home", "api"} <= set(full) and "database" in full["server"] and "docket" in full["server"]
    shown = gate.call(PORTER, "GET", "/admin/settings", headers={"Accept-Encoding": "gzip"})
    assert shown.status_code == 200, shown.text
    assert shown.json() == {"server": {"ui": {k: full["server"]["ui"][k] for k in
                                              ("enabled", "v2_enabled", "show_promotional_content")}}}  # fmt: skip
    assert gate.call(WORKER, "GET", "/admin/settings").status_code == 403  # a worker has no UI


# --- The UI in headless Chromium: one browser session per role ---------------------------------------------------


def _toasts(driver: Any) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.p-toast__message')].map(t => t.innerText)")


def _login(driver: Any, gate: GatedServer, role: Role) -> None:
    """The UI's BASIC login form (the gateway's /ui-settings turns it on): ``user:password``, then the dashboard."""
    from selenium.webdriver.common.by import By

    driver.get(f"{gate.url}/login?redirect=/dashboard")  # at /login the UI's own first auth check stays quiet
    form = Form(driver)
    form._wait(lambda: driver.find_element(By.CSS_SELECTOR, "input[type=password]")).send_keys(gate.auth_string(role))
    form.button("Login")
    form._wait(lambda: urlsplit(driver.current_url).path == "/dashboard" or None)


def _shown(driver: Any, gate: GatedServer, path: str, text: str) -> None:
    """Load PATH afresh (the UI's error toast shows once per load) and wait until TEXT is on it and it settled."""
    from selenium.webdriver.common.by import By

    driver.get(gate.url + path)
    try:
        Form(driver)._wait(lambda: text in driver.find_element(By.TAG_NAME, "body").text or None)
    except AssertionError:
        raise AssertionError(f"{path}: {text!r} not shown; toasts {_toasts(driver)}") from None
    time.sleep(2)  # the page's remaining API calls answer: a refused one would raise its toast by then


def test_in_chromium_an_administrator_edits_a_connector_a_porter_starts_a_port_and_cannot_edit_one(
    gate: GatedServer,
) -> None:
    from selenium.webdriver.common.by import By

    lab = gate.call(ADMIN, "GET", "/block_types/slug/imageport-local/block_documents/name/lab").json()
    made = gate.call(ADMIN, "POST", "/block_documents/", json={
        "name": f"ui-{uuid.uuid4().hex[:8]}", "block_schema_id": lab["block_schema_id"],
        "block_type_id": lab["block_type_id"], "data": {"root": str(gate.root / "ui")}})  # fmt: skip
    assert made.status_code == 201, made.text
    connector, edit = made.json(), f"/blocks/block/{made.json()['id']}/edit"
    changed = str(gate.root / "ui-changed")
    with chromium() as driver:
        _login(driver, gate, WORKER)  # the worker's credential is accepted by the form too (it has no UI to use)
        driver.execute_script("localStorage.clear()")
        _login(driver, gate, ADMIN)
        driver.get(gate.url + edit)
        form = Form(driver)
        form.type(changed, "Root")
        form.button("Save")
        deadline = time.monotonic() + 60
        while gate.call(ADMIN, "GET", f"/block_documents/{connector['id']}").json()["data"]["root"] != changed:
            assert time.monotonic() < deadline, _toasts(driver)
            time.sleep(0.5)
    audit_from = len(gate.log.read_text())
    port = gate.call(PORTER, "GET", "/deployments/name/mcs-to-mcs/mcs-to-mcs").json()
    before = {r["id"] for r in gate.call(PORTER, "POST", "/flow_runs/filter", json={}).json()}
    with chromium() as driver:
        _login(driver, gate, PORTER)
        # The mcs-to-mcs run form, filled and submitted: a run of the port, tagged with the porter's name.
        driver.get(f"{gate.url}/deployments/deployment/{port['id']}/run")
        form = Form(driver)
        form.reference("local", "lab", "missing.raw", "spec", "Source")  # fails its checks at once when it runs
        form.reference("local", "lab", "staging/ui.vhdx", "spec", "Staging")
        form.button("Add item", "spec", "Targets")
        form.reference("local", "lab", "target/ui.vhd", "spec", "Targets", "Disk")
        toasts = {"the run form": _toasts(driver)}  # before Submit, whose success toast says the run started
        form.button("Submit")
        deadline = time.monotonic() + 60
        while not (new := [r for r in gate.call(PORTER, "POST", "/flow_runs/filter", json={}).json()
                           if r["id"] not in before]):  # fmt: skip
            assert time.monotonic() < deadline, (driver.current_url, _toasts(driver))
            time.sleep(0.5)
        (run,) = new
        assert run["deployment_id"] == port["id"] and "imageport-by:pat" in run["tags"], run
        assert run["parameters"]["spec"]["source"]["path"] == "missing.raw"
        # The pages a porter uses, each loaded afresh: no error toast (the UI raises one for any 401/403/500).
        for path, text in (("/dashboard", "Active Work Pools"), ("/runs", run["name"]), ("/deployments", "mcs-to-mcs"),
                           (f"/deployments/deployment/{port['id']}", "mcs-to-mcs"), ("/blocks", connector["name"]),
                           (f"/blocks/block/{connector['id']}", changed), ("/settings", "Theme")):  # fmt: skip
            _shown(driver, gate, path, text)
            toasts[path] = _toasts(driver)
        # A connector's edit page: the gateway refuses its data, so the UI shows its error and no form to save.
        driver.get(gate.url + edit)
        Form(driver)._wait(lambda: _toasts(driver) or None)
        assert "Oops. Something went wrong." in _toasts(driver)[0]
        assert driver.find_elements(By.CSS_SELECTOR, "form.block-schema-edit-form, button[type=submit]") == []
    assert gate.call(ADMIN, "GET", f"/block_documents/{connector['id']}").json()["data"] == {"root": changed}
    # The audit log: the porter's only refusal was the edit page's read (every page above: nothing refused).
    log = gate.log.read_text()[audit_from:].splitlines()
    denied = [line for line in log if "imageport-audit denied user=pat" in line]
    edit_read = f"GET /api/block_documents/{connector['id']}: from a connector's edit page"
    assert {path: shown for path, shown in toasts.items() if shown} == {}, denied
    assert denied and all(edit_read in line for line in denied), denied
