"""Starting and following runs: ``imageport run|port``, ``imageport jobs list|show|wait|stop|items``, ``serve``.

The Prefect equivalents of Citrix.AppLayering's start-*/monitor/wait/stop/task-items:
a run is a Prefect flow run, its items are the task runs, its progress the
progress artifacts. ``jobs wait`` exits 0 when the run completed, 1 when it
failed or crashed, 3 when it was cancelled, 4 when ``--timeout`` passed first.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import EXIT_BAD_INPUT, console, emit_json, emit_table, err_console, reports_errors
from cli.results import show_result
from deployments.catalog import deployable
from imageport import specfile
from imageport.access.audit import started_by
from imageport.errors import InputError
from imageport.models import FinalizeMode, PortSpec, Workflow, as_parameters, parse_model

app = typer.Typer(help="Follow and control runs (flow runs on the Prefect server).", no_args_is_help=True)

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMEOUT = 0, 1, 3, 4
FINAL = {"COMPLETED": EXIT_OK, "FAILED": EXIT_FAILED, "CRASHED": EXIT_FAILED, "CANCELLED": EXIT_CANCELLED}
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _load_spec(
    path: Path, model: Any, workflow: str | None = None, finalize: FinalizeMode | None = None
) -> dict[str, Any]:
    data = specfile.load(path)  # duplicate keys, depth, size and aliases refused, with the line
    if not isinstance(data, dict):
        raise InputError(f"{path}: the spec must be a mapping of fields")
    if workflow is not None:
        data.setdefault("workflow", workflow)
    if finalize is not None:  # `port --finalize` over the spec's finalize.enabled
        data["finalize"] = {**(data.get("finalize") or {}), "enabled": finalize.value}
    # As the deployment's parameter schema accepts it (the server checks): defaults filled, no null enums.
    return as_parameters(parse_model(model, data, f"spec {path}"))


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InputError(f"{text!r} is not a run id (a flow run UUID, see `imageport jobs list`)") from None


def _start(name: str, spec: Path | None, wait: bool, local: bool, timeout: float | None, as_json: bool,
           finalize: FinalizeMode | None = None) -> None:  # fmt: skip
    entry = deployable(name)
    parameters: dict[str, Any] = {}
    if entry.spec is not None:
        if spec is None:
            raise InputError(f"{name}: give the job as --spec FILE (YAML or JSON of a {entry.spec.__name__})")
        parameters["spec"] = _load_spec(spec, entry.spec, name if entry.spec is PortSpec else None, finalize)
    if local:
        state = entry.load()(**parameters, return_state=True)
        (err_console if as_json else console).print(f"{entry.flow_name}: {state.type.value} {state.message or ''}",
                                                    highlight=False)  # fmt: skip
        if state.is_completed():
            show_result(state.result(), as_json)  # a stage's or a port's result, from its typed model
        raise typer.Exit(FINAL.get(state.type.value, EXIT_FAILED))
    from prefect.deployments import run_deployment

    flow_run = run_deployment(entry.full_name, parameters=parameters, timeout=0)
    if as_json:
        emit_json({"deployment": entry.full_name, "run": str(flow_run.id)})
    else:
        console.print(f"started {entry.full_name}: run {flow_run.id}", highlight=False)
    if wait:
        raise typer.Exit(_wait(flow_run.id, timeout))


def _check(name: str, spec: Path | None, as_json: bool, finalize: FinalizeMode | None = None) -> None:
    """Only the checks before the run (nothing is created): the report, exit 0 when clean, 2 otherwise."""
    entry = deployable(name)
    if entry.spec is None or spec is None:
        raise InputError(f"{name}: --check checks a job's spec; give it as --spec FILE")
    parameters = _load_spec(spec, entry.spec, name if entry.spec is PortSpec else None, finalize)
    model = parse_model(entry.spec, parameters, f"spec {spec}")
    if isinstance(model, PortSpec):
        from flows.ports import check_port

        report = check_port(model)
    else:
        from tasks.checks import check_stage

        report = check_stage(model)
    if as_json:
        emit_json({"ok": report.ok, "summary": report.summary, **report.model_dump(mode="json")})
    else:
        rows = [[c.field, c.check, "ok" if c.problem is None else f"PROBLEM: {c.problem}"] for c in report.checked]
        emit_table(f"checks before {name}", ["field", "check", "result"], rows)
        for problem in report.problems:
            err_console.print(f"[red]problem:[/red] {problem.line}", highlight=False)
        console.print(f"{name}: {report.summary}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_BAD_INPUT)


CheckFlag = Annotated[
    bool, typer.Option("--check", help="Only check the spec, connectors, names, stores and source; start nothing")
]


@reports_errors
def run(
    name: Annotated[
        str,
        typer.Argument(
            help="Deployment: mcs-to-mcs, pvs-to-mcs, pvs-to-pvs, mcs-to-pvs, export, "
            "upload, prepare, publish, diagnostics, reap"
        ),
    ],
    spec: Annotated[Path | None, typer.Option(help="The job's spec (YAML or JSON)")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run and exit with its outcome")] = False,
    local: Annotated[bool, typer.Option(help="Run in this process instead of through a deployment")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up waiting after this many seconds")] = None,
    check: CheckFlag = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (with --local: the result)")] = False,
) -> None:
    """Start a deployment run (or run the flow here with --local and show its result); with --check only check it
    (exit 0/2)."""
    if check:
        _check(name, spec, as_json)
    _start(name, spec, wait, local, timeout, as_json)


@reports_errors
def port(
    workflow: Annotated[Workflow, typer.Argument(help="Which port")],
    spec: Annotated[Path, typer.Option(help="The port's spec: source, staging, targets, options (YAML or JSON)")],
    wait: Annotated[bool, typer.Option(help="Wait for the run and exit with its outcome")] = False,
    local: Annotated[bool, typer.Option(help="Run in this process instead of through a deployment")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up waiting after this many seconds")] = None,
    check: CheckFlag = False,
    finalize: Annotated[
        FinalizeMode | None,
        typer.Option(help="Boot each prepared target once to run its startup actions (default: the spec's, auto)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (with --local: the result)")] = False,
) -> None:
    """Start one of the four workflows (with --local: run it here and show every stage's result); with
    --check only check it (exit 0 clean, 2 problems)."""
    if check:
        _check(workflow.value, spec, as_json, finalize)
    _start(workflow.value, spec, wait, local, timeout, as_json, finalize)


def _wait(run_id: uuid.UUID, timeout: float | None) -> int:
    from prefect import get_client

    deadline = time.monotonic() + timeout if timeout else None
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(run_id)
            state = flow_run.state.type.value if flow_run.state else "PENDING"
            if state in FINAL:
                console.print(f"run {run_id}: {state} {flow_run.state.message or ''}", highlight=False)
                return FINAL[state]
            if deadline and time.monotonic() > deadline:
                console.print(f"run {run_id}: still {state} after {timeout:.0f} s", highlight=False)
                return EXIT_TIMEOUT
            time.sleep(1.0)


@app.command("wait")
@reports_errors
def wait_(
    run_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting after this many seconds (exit 4)")] = None,
) -> None:
    """Wait for a run to end: exit 0 completed, 1 failed/crashed, 3 cancelled, 4 timed out waiting."""
    raise typer.Exit(_wait(_run_id(run_id), timeout))


@app.command("list")
@reports_errors
def list_(
    limit: Annotated[int, typer.Option(help="How many of the latest runs")] = 20, as_json: JsonFlag = False
) -> None:
    """The latest runs with their state."""
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=limit, sort=FlowRunSort.START_TIME_DESC)
        names = {f.id: f.name for f in client.read_flows()}
    rows = [[str(r.id), names.get(r.flow_id, "?"), r.name, r.state.type.value if r.state else "?",
             str(r.start_time or r.expected_start_time or "")[:19]] for r in runs]  # fmt: skip
    if as_json:
        emit_json([dict(zip(["id", "flow", "name", "state", "started"], row, strict=True)) for row in rows])
    else:
        emit_table("runs", ["id", "flow", "name", "state", "started"], rows, whole=["id"])  # ids are to copy


def _items(client: Any, run_id: uuid.UUID) -> list[list[str]]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return [[t.name, t.state.type.value if t.state else "?", f"{t.total_run_time.total_seconds():.1f} s"]
            for t in sorted(tasks, key=lambda t: t.expected_start_time or t.created)]  # fmt: skip


@app.command("items")
@reports_errors
def items(run_id: str, as_json: JsonFlag = False) -> None:
    """The run's task items (stages) with their states."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        rows = _items(client, _run_id(run_id))
    if as_json:
        emit_json([dict(zip(["task", "state", "duration"], row, strict=True)) for row in rows])
    else:
        emit_table(f"items of {run_id}", ["task", "state", "duration"], rows)


@app.command("show")
@reports_errors
def show(run_id: str, as_json: JsonFlag = False) -> None:
    """State, items, progress and result artifacts of one run."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    rid = _run_id(run_id)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(rid)
        rows = _items(client, rid)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[rid]))
        )
    state = flow_run.state.type.value if flow_run.state else "?"
    message = flow_run.state.message if flow_run.state else ""
    summary = {
        "id": str(rid), "name": flow_run.name, "state": state, "message": message,
        "started_by": started_by(flow_run.tags),  # the gateway's imageport-by: tag; None for a schedule
        "items": [dict(zip(["task", "state", "duration"], r, strict=True)) for r in rows],
        "artifacts": [{"key": a.key, "type": a.type, "data": a.data} for a in artifacts],
    }  # fmt: skip
    if as_json:
        emit_json(summary)
        return
    console.print(f"run {rid} ({flow_run.name}): {state} {summary['message'] or ''}", highlight=False)
    console.print(f"started by: {summary['started_by'] or 'a schedule or an unauthenticated server'}", highlight=False)
    emit_table("items", ["task", "state", "duration"], rows)
    for artifact in artifacts:
        if artifact.type == "progress":
            console.print(f"progress {artifact.description or ''}: {float(artifact.data):.0f}%", highlight=False)
        elif artifact.type == "markdown":
            console.print(str(artifact.data), highlight=False)


@app.command("stop")
@reports_errors
def stop(run_id: str) -> None:
    """Cancel a run; its compositing engine is removed by the run's cancellation hook (and the reaper)."""
    from prefect import get_client
    from prefect.states import Cancelled, Cancelling

    rid = _run_id(run_id)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(rid)
        state = flow_run.state.type.value if flow_run.state else "?"
        if state in FINAL:
            raise InputError(f"run {rid} has already ended ({state})")
        # A run that has not started is cancelled outright; a running one is asked to stop (its
        # worker or `imageport serve` kills it, then the cancellation hook removes its CE).
        started = state in ("RUNNING", "PAUSED")
        new = Cancelling if started else Cancelled
        client.set_flow_run_state(rid, new(message="stopped with imageport jobs stop"), force=True)
    console.print(f"run {rid}: {'cancelling' if started else 'cancelled'}", highlight=False)


def serve(limit: Annotated[int | None, typer.Option(help="At most this many runs at once")] = None) -> None:
    """Serve every deployment from this process (UI, REST API, schedules and `imageport run` trigger them)."""
    from deployments.serve import serve_all

    serve_all(limit)
