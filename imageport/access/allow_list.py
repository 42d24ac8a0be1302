"""The allow-list: which of Prefect's REST routes porters and workers may call (administrators: all).

One line per route, ``METHOD /template WHO [CONDITION]``, templates as Prefect's routers declare them
under ``/api`` (``WS`` for a websocket). WHO is ``both`` (porter and worker), ``porter`` or ``worker``.

Porter (Image Porter): read runs, task runs, states, logs, artifacts, flows, deployments, work pools,
events and connectors *without secrets* (every route that can return a block's secret values is
listed with ``no-secrets``); start a deployment's run (``create_flow_run``: the gateway tags it
with the caller), stop it or re-run it (``set_state`` to CANCELLING/CANCELLED, or SCHEDULED, which is
the UI's "Retry"); the server settings the UI reads on every page, cut down to a few harmless ones
(``imageport.access.views``). Everything else, block and deployment writes included, is denied.

Worker (``imageport serve``, ``prefect worker``, the flow runs they start): the porter's reads, plus
the block secrets the flows load, registering flows and deployments (``imageport serve`` upserts
and updates them), the server's default result storage, running runs (states, task runs, logs,
artifacts, events), global concurrency slots (compositing-engine slots) and the work-pool polling
of a worker.
"""

from __future__ import annotations

from imageport.access.policy import NO_SECRETS, Condition, Policy, Rule, state_types
from imageport.access.roles import Role

WHO = {"both": frozenset({Role.PORTER, Role.WORKER}), "worker": frozenset({Role.WORKER}),
       "porter": frozenset({Role.PORTER})}  # fmt: skip
CONDITIONS: dict[str, Condition] = {
    "no-secrets": NO_SECRETS,
    "stop-or-retry": state_types("CANCELLING", "CANCELLED", "SCHEDULED"),
}

ALLOW_LIST = """
GET   /health                                   both
GET   /ready                                    both
GET   /hello                                    both
GET   /version                                  both
GET   /admin/version                            both
GET   /admin/settings                           porter   # the UI's every page; views.py: a few, redacted
GET   /admin/storage                            worker   # the server's default result storage (a block id)
GET   /csrf-token                               both
GET   /collections/views/{view}                 both

POST  /flows/                                   worker
GET   /flows/{id}                               both
GET   /flows/name/{name}                        both
POST  /flows/filter                             both
POST  /flows/count                              both
POST  /flows/paginate                           both

POST  /flow_runs/                               worker
PATCH /flow_runs/{id}                           worker
GET   /flow_runs/{id}                           both
POST  /flow_runs/filter                         both
POST  /flow_runs/count                          both
POST  /flow_runs/paginate                       both
POST  /flow_runs/lateness                       both
POST  /flow_runs/history                        both
GET   /flow_runs/{id}/graph                     both
GET   /flow_runs/{id}/graph-v2                  both
GET   /flow_runs/{id}/logs/download             both
POST  /flow_runs/{id}/set_state                 both     stop-or-retry
PATCH /flow_runs/{id}/labels                    worker
POST  /flow_runs/{id}/input                     worker
POST  /flow_runs/{id}/input/filter              worker
GET   /flow_runs/{id}/input/{key}               worker
GET   /flow_run_states/{id}                     both
GET   /flow_run_states/                         both

POST  /task_runs/                               worker
PATCH /task_runs/{id}                           worker
GET   /task_runs/{id}                           both
POST  /task_runs/filter                         both
POST  /task_runs/count                          both
POST  /task_runs/history                        both
POST  /task_runs/paginate                       both
POST  /task_runs/{id}/set_state                 worker
GET   /task_run_states/{id}                     both
GET   /task_run_states/                         both

POST  /deployments/                             worker
PATCH /deployments/{id}                         worker   # serve updates what it registered (POST upserts anyway)
GET   /deployments/{id}                         both
GET   /deployments/name/{flow_name}/{deployment_name} both
POST  /deployments/filter                       both
POST  /deployments/paginate                     both
POST  /deployments/count                        both
GET   /deployments/{id}/schedules               both
POST  /deployments/{id}/schedules               worker
PATCH /deployments/{id}/schedules/{schedule_id} worker
DELETE /deployments/{id}/schedules/{schedule_id} worker
GET   /deployments/{id}/work_queue_check        both
POST  /deployments/get_scheduled_flow_runs      worker
POST  /deployments/{id}/create_flow_run         both

POST  /logs/                                    worker
POST  /logs/filter                              both
WS    /logs/out                                 both

POST  /artifacts/                               worker
PATCH /artifacts/{id}                           worker
GET   /artifacts/{id}                           both
GET   /artifacts/{key}/latest                   both
POST  /artifacts/filter                         both
POST  /artifacts/latest/filter                  both
POST  /artifacts/count                          both
POST  /artifacts/latest/count                   both

GET   /block_types/{id}                         both
GET   /block_types/slug/{slug}                  both
POST  /block_types/filter                       both
GET   /block_types/slug/{slug}/block_documents  both     no-secrets
GET   /block_types/slug/{slug}/block_documents/name/{block_document_name} both no-secrets
POST  /block_documents/filter                   both     no-secrets
POST  /block_documents/count                    both
GET   /block_documents/{id}                     both     no-secrets
GET   /block_schemas/{id}                       both
POST  /block_schemas/filter                     both
GET   /block_schemas/checksum/{checksum}        both
GET   /block_capabilities/                      both

GET   /work_pools/{name}                        both
POST  /work_pools/filter                        both
POST  /work_pools/count                         both
POST  /work_pools/{name}/get_scheduled_flow_runs worker
POST  /work_pools/{work_pool_name}/queues/filter both
GET   /work_pools/{work_pool_name}/queues/{name} both
POST  /work_pools/{work_pool_name}/workers/heartbeat worker
POST  /work_pools/{work_pool_name}/workers/filter both
WS    /work_pools/{work_pool_name}/workers/connect worker
GET   /work_queues/{id}                         both
GET   /work_queues/name/{name}                  both
POST  /work_queues/filter                       both
GET   /work_queues/{id}/status                  both
POST  /work_queues/{id}/get_runs                worker

POST  /v2/concurrency_limits/                   worker
GET   /v2/concurrency_limits/{id_or_name}       worker
PATCH /v2/concurrency_limits/{id_or_name}       worker
POST  /v2/concurrency_limits/filter             worker
POST  /v2/concurrency_limits/increment          worker
POST  /v2/concurrency_limits/increment-with-lease worker
POST  /v2/concurrency_limits/decrement          worker
POST  /v2/concurrency_limits/decrement-with-lease worker
POST  /v2/concurrency_limits/leases/{lease_id}/renew worker
POST  /concurrency_limits/increment             worker
POST  /concurrency_limits/decrement             worker

GET   /variables/name/{name}                    worker
POST  /variables/filter                         worker

POST  /events                                   worker
WS    /events/in                                worker
WS    /events/out                               both
POST  /events/filter                            both
GET   /events/filter/next                       both
POST  /events/count-by/{countable}              both
WS    /task_runs/subscriptions/scheduled        worker

POST  /saved_searches/filter                    porter   # the runs page's saved filters (a filter: no secrets)

POST  /automations/filter                       both
POST  /automations/count                        both
GET   /automations/related-to/{resource_id}     both
DELETE /automations/owned-by/{resource_id}      worker   # serve replaces a deployment's own triggers

POST  /ui/flows/count-deployments               both
POST  /ui/flows/next-runs                       both
POST  /ui/flow_runs/history                     both
POST  /ui/flow_runs/count-task-runs             both
POST  /ui/schemas/validate                      both
POST  /ui/task_runs/dashboard/counts            both
POST  /ui/task_runs/count                       both
GET   /ui/task_runs/{id}                        both
"""


def _rules(text: str) -> list[Rule]:
    rules = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        method, template, who, *condition = line.partition("#")[0].split()
        rules.append(Rule(method, template, WHO[who], CONDITIONS[condition[0]] if condition else None))
    return rules


POLICY = Policy(_rules(ALLOW_LIST))
