"""A local stand-in for Prism Central's v4 REST APIs (no runnable Prism exists) -- only what imageport calls.

Written to the v4 API definition as the vendor's SDKs carry it: every answer is built from the SDK's own
models (``ntnx_vmm_py_client`` / ``ntnx_prism_py_client``) and serialized by the SDK's serializer, so
paths, the ``data``/``metadata`` envelope and ``$objectType`` are the vendor's, not ours. It enforces:

- HTTPS with a certificate made at start-up; basic auth on every request without a valid session cookie
  (401 + a v4 ``ErrorResponse``), and a session cookie (``NTNX_IGW_SESSION``) on success;
- ``$page``/``$limit`` and the ``$filter`` forms imageport sends (``name eq 'X'``, ``vmExtId eq 'X'``,
  ``startswith(name, 'X')``); anything else is a 400;
- mutations answer 202 with a ``TaskReference``; the ``NTNX-Request-Id`` header is required and makes
  them idempotent (the same id answers the same task); a task moves QUEUED -> RUNNING -> SUCCEEDED
  one state per poll, and its effect (the image made, the image gone) lands when it succeeds;
- ``ETag`` on every single-object GET; a delete without ``If-Match`` or with a stale one is a 412;
- ``Range`` on the image file endpoint (206 + ``Content-Range``; 416 past the end); ``drop_streams``
  makes the next N file answers longer than 1 MiB stop halfway through (a dropped stream).
"""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.infra.arm_standin import make_certificate
from tests.infra.services import free_port

VMM = r"/api/vmm/v4\.\d+"
PRISM = r"/api/prism/v4\.\d+"
ROUTES = [
    ("GET", re.compile(rf"^{VMM}/ahv/config/vms$"), "list_vms"),
    ("GET", re.compile(rf"^{VMM}/ahv/config/vms/([^/]+)$"), "get_vm"),
    ("GET", re.compile(rf"^{VMM}/ahv/config/vm-recovery-points$"), "list_recovery_points"),
    ("GET", re.compile(rf"^{VMM}/content/images$"), "list_images"),
    ("POST", re.compile(rf"^{VMM}/content/images$"), "create_image"),
    ("GET", re.compile(rf"^{VMM}/content/images/([^/]+)$"), "get_image"),
    ("DELETE", re.compile(rf"^{VMM}/content/images/([^/]+)$"), "delete_image"),
    ("GET", re.compile(rf"^{VMM}/content/images/([^/]+)/file$"), "image_file"),
    ("GET", re.compile(rf"^{PRISM}/config/tasks/([^/]+)$"), "get_task"),
]
FILTERS = [
    re.compile(r"^(name|vmExtId) eq '((?:[^']|'')*)'$"),
    re.compile(r"^startswith\((name), '((?:[^']|'')*)'\)$"),
]
COOKIE = "NTNX_IGW_SESSION"


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class StandInDisk:
    bus: str  # SCSI, SATA, IDE, PCI
    index: int
    path: Path  # the disk's bytes (raw)
    ext_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class StandInVm:
    name: str
    disks: list[StandInDisk]
    uefi: bool = True
    power_state: str = "ON"
    recovery_points: list[str] = field(default_factory=list)
    ext_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _serialize(model: Any) -> Any:
    from ntnx_vmm_py_client import ApiClient

    return ApiClient(allow_version_negotiation=False)._ApiClient__sanitize_for_serialization(model)  # type: ignore[attr-defined]


class PrismStandIn:
    def __init__(self, directory: Path, username: str = "admin", password: str = "Nutanix/4u-test") -> None:
        self.directory = directory
        self.username, self.password = username, password
        self.vms: dict[str, StandInVm] = {}
        self.images: dict[str, dict[str, Any]] = {}
        self.created_images: list[tuple[str, str]] = []  # (name, description) of every image made, deleted or not
        self.tasks: dict[str, dict[str, Any]] = {}
        self.request_ids: dict[str, str] = {}  # NTNX-Request-Id -> task
        self.sessions: set[str] = set()
        self.drop_streams = 0
        self.file_requests: list[str] = []  # the Range header of each image file request
        self.lock = threading.Lock()
        self.cert, key = make_certificate(directory)
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def fingerprint(self) -> str:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))

    def add_vm(self, vm: StandInVm) -> StandInVm:
        self.vms[vm.ext_id] = vm
        return vm

    # --- models ----------------------------------------------------------------------------------

    def _vm_model(self, vm: StandInVm) -> Any:
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.Disk import Disk
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.DiskAddress import DiskAddress
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.LegacyBoot import LegacyBoot
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.UefiBoot import UefiBoot
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.Vm import Vm
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.VmDisk import VmDisk

        disks = [Disk(ext_id=str(uuid.uuid5(uuid.NAMESPACE_URL, d.ext_id)),
                      disk_address=DiskAddress(bus_type=d.bus, index=d.index),
                      backing_info=VmDisk(disk_ext_id=d.ext_id, disk_size_bytes=d.path.stat().st_size))
                 for d in vm.disks]  # fmt: skip
        boot = UefiBoot(is_secure_boot_enabled=False) if vm.uefi else LegacyBoot()
        return Vm(ext_id=vm.ext_id, name=vm.name, power_state=vm.power_state, boot_config=boot, disks=disks)

    def _image_model(self, image: dict[str, Any]) -> Any:
        from ntnx_vmm_py_client import Image, VmDiskSource

        return Image(ext_id=image["extId"], name=image["name"], description=image["description"], type="DISK_IMAGE",
                     size_bytes=image["path"].stat().st_size, source=VmDiskSource(ext_id=image["source"]))  # fmt: skip

    def _task_model(self, task: dict[str, Any]) -> Any:
        from ntnx_prism_py_client import EntityReference, Task

        entities = [EntityReference(ext_id=e, rel=rel) for rel, e in task["entities"]]
        return Task(ext_id=task["extId"], operation=task["operation"], status=task["status"],
                    progress_percentage=task["progress"], entities_affected=entities)  # fmt: skip

    @staticmethod
    def _envelope(response_type: Any, data: Any, total: int | None = None) -> dict[str, Any]:
        from ntnx_vmm_py_client import ApiResponseMetadata

        metadata = ApiResponseMetadata(total_available_results=total)
        return _serialize(response_type(data=data, metadata=metadata))

    @staticmethod
    def error_body(status: int, code: str, message: str, prism: bool = False) -> dict[str, Any]:
        if prism:
            from ntnx_prism_py_client import AppMessage, ErrorResponse
        else:
            from ntnx_vmm_py_client import AppMessage, ErrorResponse
        error = ErrorResponse(error=[AppMessage(code=code, message=message, severity="ERROR")])
        return {"data": _serialize(error), "$objectType": "common.v1.response.ApiResponse"}

    def _etag(self, kind: str, ext_id: str, version: int) -> str:
        return f'"{kind}-{ext_id}-{version}"'

    # --- operations ------------------------------------------------------------------------------

    def _page(self, query: dict[str, list[str]], items: list[Any], field_of: dict[str, Any]) -> tuple[list[Any], int]:
        text = query.get("$filter", [None])[0]
        if text:
            for pattern in FILTERS:
                found = pattern.match(text)
                if found:
                    name, value = found.group(1), found.group(2).replace("''", "'")
                    if name not in field_of:
                        raise Refusal(400, "VMM-10400", f"$filter: {name} is not filterable here")
                    starts = text.startswith("startswith")
                    items = [i for i in items if (str(field_of[name](i)).startswith(value) if starts
                                                  else str(field_of[name](i)) == value)]  # fmt: skip
                    break
            else:
                raise Refusal(400, "VMM-10400", f"$filter {text!r}: not an expression this stand-in evaluates")
        page, limit = int(query.get("$page", ["0"])[0]), int(query.get("$limit", ["50"])[0])
        if not 1 <= limit <= 100:
            raise Refusal(400, "VMM-10400", "$limit must be 1..100")
        return items[page * limit : (page + 1) * limit], len(items)

    def list_vms(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.ListVmsApiResponse import ListVmsApiResponse

        vms, total = self._page(query, list(self.vms.values()), {"name": lambda v: v.name})
        return 200, self._envelope(ListVmsApiResponse, [self._vm_model(v) for v in vms], total), {}

    def get_vm(self, ext_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client.models.vmm.v4.ahv.config.GetVmApiResponse import GetVmApiResponse

        vm = self.vms.get(ext_id)
        if vm is None:
            raise Refusal(404, "VMM-20005", f"VM {ext_id} not found")
        return 200, self._envelope(GetVmApiResponse, self._vm_model(vm)), {"ETag": self._etag("vm", ext_id, 0)}

    def list_recovery_points(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client import ListVmRecoveryPointsApiResponse, VmRecoveryPoint

        points = [(vm.ext_id, name) for vm in self.vms.values() for name in vm.recovery_points]
        points, total = self._page(query, points, {"vmExtId": lambda p: p[0], "name": lambda p: p[1]})
        data = [VmRecoveryPoint(ext_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{vm}/{name}")), vm_ext_id=vm, name=name)
                for vm, name in points]  # fmt: skip
        return 200, self._envelope(ListVmRecoveryPointsApiResponse, data, total), {}

    def list_images(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client import ListImagesApiResponse

        images, total = self._page(query, list(self.images.values()), {"name": lambda i: i["name"]})
        return 200, self._envelope(ListImagesApiResponse, [self._image_model(i) for i in images], total), {}

    def _image(self, ext_id: str) -> dict[str, Any]:
        image = self.images.get(ext_id)
        if image is None:
            raise Refusal(404, "VMM-30404", f"image {ext_id} not found")
        return image

    def get_image(self, ext_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client import GetImageApiResponse

        image = self._image(ext_id)
        etag = self._etag("image", ext_id, image["version"])
        return 200, self._envelope(GetImageApiResponse, self._image_model(image)), {"ETag": etag}

    def _task(self, request_id: str, operation: str, effect: Any, entities: list[tuple[str, str]],
              response_type: Any) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
        from ntnx_vmm_py_client import TaskReference

        with self.lock:
            task_id = self.request_ids.get(request_id)
            if task_id is None:  # a retried request (same NTNX-Request-Id) gets the task it started
                task_id = f"ZXJnb24=:{uuid.uuid4()}"
                self.tasks[task_id] = {"extId": task_id, "operation": operation, "status": "QUEUED", "progress": 0,
                                       "effect": effect, "entities": entities}  # fmt: skip
                self.request_ids[request_id] = task_id
        return 202, self._envelope(response_type, TaskReference(ext_id=task_id)), {}

    def create_image(self, body: dict[str, Any], request_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_vmm_py_client import CreateImageApiResponse

        source = body.get("source") or {}
        if body.get("type") != "DISK_IMAGE" or source.get("$objectType") != "vmm.v4.content.VmDiskSource":
            raise Refusal(400, "VMM-30400", "this stand-in makes DISK_IMAGE images from a VmDiskSource only")
        if not body.get("name"):
            raise Refusal(400, "VMM-30400", "name is required")
        disk = next((d for vm in self.vms.values() for d in vm.disks if d.ext_id == source.get("extId")), None)
        if disk is None:
            raise Refusal(404, "VMM-20006", f"VM disk {source.get('extId')} not found")
        image_id = str(uuid.uuid4())

        def clone() -> None:  # the disk as it is when the task runs, copied (the VM keeps its own)
            path = self.directory / f"image-{image_id}.raw"
            shutil.copyfile(disk.path, path)
            self.images[image_id] = {"extId": image_id, "name": body["name"], "description": body.get("description"),
                                     "source": disk.ext_id, "path": path, "version": 1}  # fmt: skip
            self.created_images.append((body["name"], body.get("description") or ""))

        return self._task(request_id, "CreateImage", clone, [("vmm:content:image", image_id)], CreateImageApiResponse)

    def delete_image(self, ext_id: str, if_match: str | None, request_id: str) -> Any:
        from ntnx_vmm_py_client import DeleteImageApiResponse

        image = self._image(ext_id)
        if if_match != self._etag("image", ext_id, image["version"]):
            raise Refusal(412, "VMM-30412", "If-Match is missing or does not match the image's current ETag")

        def remove() -> None:
            gone = self.images.pop(ext_id, None)
            if gone is not None:
                gone["path"].unlink(missing_ok=True)

        return self._task(request_id, "DeleteImage", remove, [("vmm:content:image", ext_id)], DeleteImageApiResponse)

    def get_task(self, ext_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        from ntnx_prism_py_client import GetTaskApiResponse

        with self.lock:
            task = self.tasks.get(ext_id)
            if task is None:
                raise Refusal(404, "PRISM-404", f"task {ext_id} not found")
            if task["status"] == "QUEUED":
                task.update(status="RUNNING", progress=50)
            elif task["status"] == "RUNNING":
                task["effect"]()
                task.update(status="SUCCEEDED", progress=100)
            model = self._task_model(task)
        return 200, _serialize(GetTaskApiResponse(data=model)), {}

    # --- HTTP ------------------------------------------------------------------------------------

    def _authorized(self, headers: Any) -> tuple[bool, str | None]:
        """Whether the request may go on, and a new session cookie to set."""
        cookies = dict(c.strip().split("=", 1) for c in (headers.get("Cookie") or "").split(";") if "=" in c)
        if cookies.get(COOKIE) in self.sessions:
            return True, None
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(token).decode(errors="replace").partition(":")
            if user == self.username and password == self.password:
                session = uuid.uuid4().hex
                self.sessions.add(session)
                return True, session
        return False, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        from tests.infra.prism_http import make_handler

        return make_handler(self)
