"""The finalize task: boot a prepared image once in a helper VM on its platform until its startup actions are done.

The disk's adapter says what its platform boots (``finalize_source``; a kind that cannot -- a local file, a
vDisk on a share, a snapshot -- refuses, saying where the actions run instead); the connector's backend
(``engine.finalize.BootsImages``) creates the helper VM, reads the guest's log and stops it, and
``engine.finalize.finalize_image`` ties that to the CE's guarantees: tagged, timed, always deleted. The helper
holds one of its connector's CE slots while it exists.
"""

from __future__ import annotations

from prefect import task

from blocks.resolve import CONNECTORS, describe_ref
from imageport.adapters.registry import adapter_for
from imageport.engine.finalize import BootsImages, HelperVm, finalize_image
from imageport.errors import InputError
from imageport.models import FinalizeSpec
from imageport.results import StageResult, from_finalize
from tasks.engine import ce_slot, current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import phase_progress

PHASES = ("boot the image in a helper VM", "wait for the startup actions", "remove the helper VM")


@task(name="finalize_image", task_run_name="finalize {spec.disk.kind} disk", **RETRY_TRANSIENT)
def finalize_disk(spec: FinalizeSpec) -> StageResult:
    """Boot the prepared disk once, wait for 'all actions done' in its firstboot.log, stop and delete the VM."""
    source = adapter_for(spec.disk).finalize_source(spec.disk, CONNECTORS)  # refuses a kind that does not boot
    phase = phase_progress(f"finalize {adapter_for(spec.disk).name(spec.disk)}", PHASES)
    phase(PHASES[0])
    with ce_slot(spec.disk.connector) as backend:
        if not isinstance(backend, BootsImages):
            raise InputError(f"disk.connector: the {backend.platform} connector {spec.disk.connector} cannot boot "
                             "a helper VM for finalize")  # fmt: skip
        helper = HelperVm(vm_size=spec.vm_size)
        done = finalize_image(backend, source, current_run_id(), timeout_s=spec.timeout_s, helper=helper)
    phase("done")
    return from_finalize(done, describe_ref(spec.disk))
