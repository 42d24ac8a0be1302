"""Resume for workflows: a completed stage whose input is unchanged and whose output still exists is reused.

Each stage task of a workflow is cached by Prefect under a key made of the
stage, its spec and the *identity* of what it reads; its result is persisted.
Re-running a failed workflow with the same parameters therefore reuses every
completed stage (Prefect's ``Cached`` state; the result is marked ``reused``)
and runs the rest; partial work inside a stage resumes by the stage's own
checkpoints (staged files, page-blob checkpoints). A cached stage whose
output has since disappeared is run again.

Identities come from each kind's adapter (``imageport/adapters/``): an image file (local, on a
share or a datastore) by its source fingerprint
(``imageport.disks.fingerprint``: the store's size, modification time and file
id, the container's change markers and a digest of its metadata), so a vDisk
edited in place -- even to the same size -- is a new input; an Azure disk
by id, state and creation time; a vSphere disk by VM, disk file, the VM's
``config.changeVersion`` and its snapshot, if one is named. vSphere
has no content change id for a disk without CBT, so an export is cached for
at most its adapter's ``cache_expiry`` (24 hours); pass ``refresh=True`` to a workflow (or name a
snapshot) to be exact.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from typing import Any

from blocks.resolve import CONNECTORS, describe_ref
from imageport.adapters.registry import adapter_for
from imageport.errors import ImageportError
from imageport.redaction import redact_data
from imageport.results import StageResult
from tasks.refusals import mark_stage

STAGE_CACHE = timedelta(days=30)
# Stage results persist as JSON (Prefect's ``JSONSerializer``): a cached stage is read back as a typed
# ``StageResult``, and the persisted file is text the secret scans can read.
RESULT_SERIALIZER = "json"


def ref_identity(ref: Any) -> str:
    """What names the current content of ``ref``; ``missing`` when it does not exist."""
    try:
        return _identity(ref)
    except ImageportError as exc:
        return f"missing ({type(exc).__name__})"


def _identity(ref: Any) -> str:
    return adapter_for(ref).identity(ref, CONNECTORS)


def stage_key(stage: str, spec: Any, reads: Any) -> str:
    """The cache key of a stage run: its spec and the identity of what it reads."""
    material = json.dumps(
        {"stage": stage, "spec": spec.model_dump(mode="json"), "in": ref_identity(reads)}, sort_keys=True
    )
    return f"imageport-{stage}-{hashlib.sha256(material.encode()).hexdigest()}"


def stage_cached(task: Any, stage: str, spec: Any, reads: Any) -> bool:
    """Whether ``run_stage(task, spec, ...)`` would reuse an earlier result (same spec, same input), unexpired.

    Asked of the result store as Prefect's task engine sets it up for ``task`` (the run's own store keeps
    no metadata storage, so it would never find a task's record)."""
    from prefect.results import get_result_store

    store = get_result_store().update_for_task(task.with_options(persist_result=True))
    return store.exists(stage_key(stage, spec, reads))


def run_stage(
    task: Any, spec: Any, *, stage: str, reads: Any, writes: Any, refresh: bool = False,
    inputs: dict[str, Any] | None = None,
) -> StageResult:
    """Run (or reuse) one stage; its result with ``source``/``target`` (the references), ``reused`` and this
    run's ``seconds`` filled. Prefect persists it as JSON, so a reused stage comes back as a ``StageResult``.
    ``inputs``: the task's other parameters (not part of the key: the spec and the input's identity are).
    A streamed upload keeps its sink's own seconds (its data moved during the export).

    No Prefect ``timeout_seconds``: it cannot interrupt a blocking call (and warns so). Each stage enforces its
    own ``spec.timeout_s`` where it can act -- the transfer loop (``imageport.transfer.deadline``), the CE's
    wait for its agent (``engine/lifecycle.py``)."""
    key = stage_key(stage, spec, reads)
    expiry = adapter_for(reads).cache_expiry or STAGE_CACHE
    options: dict[str, Any] = {
        "cache_key_fn": lambda context, parameters: key,
        "cache_expiration": expiry,
        "persist_result": True,
        "result_serializer": RESULT_SERIALIZER,
    }
    started = time.monotonic()
    inputs = inputs or {}
    state = task.with_options(**options, refresh_cache=refresh)(spec, **inputs, return_state=True)
    try:
        result = state.result()
    except ImageportError as exc:
        raise mark_stage(exc, stage) from None  # a refusal names e.g. prepare.overwrite
    reused = state.name == "Cached"
    # Redone: a cached stage whose output has gone, or an earlier release's untyped (dict) result.
    if reused and (not isinstance(result, StageResult) or ref_identity(writes).startswith("missing")):
        state = task.with_options(**options, refresh_cache=True)(spec, **inputs, return_state=True)
        result, reused = state.result(), False
    seconds = result.seconds if result.streamed and not reused and stage != "export" else time.monotonic() - started
    return located_result(result, reads, writes, reused=reused, seconds=seconds)


def located_result(result: StageResult, reads: Any, writes: Any, **update: Any) -> StageResult:
    """A stage's result named by the references it read and wrote, redacted (it is shown)."""
    if not isinstance(result, StageResult):
        raise TypeError(f"a stage returned {type(result).__name__}, not a StageResult")
    target = describe_ref(writes) if writes is not None else result.target  # the core's path or id -> a reference
    # The output, named as the reference it now is (an Azure CE's kept disk may have become a snapshot).
    output = {"id": target, "kind": writes.kind} if writes is not None else {"id": target}
    created = [r.model_copy(update=output) if r.id == result.target else r for r in result.created]
    named = result.model_copy(update={"source": describe_ref(reads), "target": target, "created": created, **update})
    return StageResult.model_validate(redact_data(named.model_dump(mode="json")))
