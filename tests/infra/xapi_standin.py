"""A XenServer 8 pool (xapi) stand-in: XML-RPC API and the host's ``/export_raw_vdi`` HTTP handler, over HTTPS.

XenServer has no emulator, so the suite runs the vendor's SDK (PyPI ``XenAPI``) against this, written from
xapi's published definition (github.com/xapi-project/xen-api: ``ocaml/idl/datamodel*.ml`` for classes,
fields, messages and error codes; ``ocaml/xapi/export_raw_vdi.ml`` for the handler; the SDK's ``XenAPI.py``
for the wire). What it enforces, as xapi does:

- the wire: every call is XML-RPC ``Class.message(session, args...)``; the answer is
  ``{"Status": "Success", "Value": ...}`` or ``{"Status": "Failure", "ErrorDescription": [CODE, ...]}``;
  int fields (``virtual_size``) travel as strings, as xapi's XML-RPC does;
- credentials: ``session.login_with_password(uname, pwd, version, originator)`` with a wrong pair is
  ``SESSION_AUTHENTICATION_FAILED``; a call with an unknown or logged-out session is ``SESSION_INVALID``
  (which the SDK answers by logging in again); an unknown reference is ``HANDLE_INVALID [class, ref]``;
  a message it does not know ``MESSAGE_METHOD_UNKNOWN``, a wrong arity ``MESSAGE_PARAMETER_COUNT_MISMATCH``;
- the pool: requests addressed (HTTP ``Host``) to a pool member's address are refused with
  ``HOST_IS_SLAVE [master address]`` -- several hosts served on one socket, told apart by the address
  the client used, so the suite binds only 127.0.0.1;
- snapshots: ``VM.snapshot(vm, new_name[, ignore_vdis])`` makes a halted VM with ``is_a_snapshot`` and
  a frozen copy of each disk VDI (``snapshot_of`` the original); ``VM.destroy`` leaves the VDIs,
  ``VDI.destroy`` removes one (refused with ``VDI_IN_USE`` while a non-snapshot VM's VBD uses it);
- tasks: ``task.create`` → ``pending``, progress 0..1 while the handler streams, ``success`` (or
  ``failure`` with ``error_info``) at its end, ``task.destroy``;
- ``GET /export_raw_vdi?session_id=&task_id=&vdi=&format=raw|vhd``: 403 without a valid session
  (``Xapi_http.assert_credentials_ok``), the VDI's bytes as raw or as a dynamic VHD (2 MiB blocks, only
  the non-zero ones), no Content-Length, connection closed at the end (``keep_alive:false``).
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import struct
import threading
import time
import uuid
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.infra.arm_standin import make_certificate

CLASSES = ("VM", "VBD", "VDI", "SR", "task", "pool", "host")
MiB = 1024 * 1024
VHD_BLOCK = 2 * MiB


class XapiFailure(Exception):
    def __init__(self, *description: str) -> None:
        self.description = list(description)


def new_ref() -> str:
    return f"OpaqueRef:{uuid.uuid4()}"


@dataclass
class Pool:
    """Objects by class and reference; VDI contents are files under ``directory``."""

    directory: Path
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {c: {} for c in CLASSES})
    content: dict[str, Path] = field(default_factory=dict)  # VDI ref -> raw backing file

    def add(self, cls: str, **record: Any) -> str:
        ref = new_ref()
        self.objects[cls][ref] = {"uuid": str(uuid.uuid4()), "other_config": {}, **record}
        return ref

    def get(self, cls: str, ref: Any) -> dict[str, Any]:
        record = self.objects[cls].get(ref) if isinstance(ref, str) else None
        if record is None:
            raise XapiFailure("HANDLE_INVALID", cls, str(ref))
        return record


class XapiStandIn:
    """One pool: a master at ``master_address`` and members at ``member_addresses``, on one HTTPS port."""

    def __init__(self, directory: Path, username: str, password: str, *,
                 master_address: str = "127.0.0.1", member_addresses: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.directory = directory
        self.username, self.password = username, password
        self.master_address, self.member_addresses = master_address, member_addresses
        self.pool = Pool(directory)
        # Every other_config entry as it was written (class, object's name label, key, value): a test reads what
        # a snapshot carried after the run destroyed it.
        self.other_config_written: list[tuple[str, str, str, str]] = []
        self.sessions: set[str] = set()
        self.calls: list[str] = []  # every message called, in order (tests read what the SDK sent)
        self.lock = threading.RLock()
        self.sr = self.pool.add("SR", name_label="Local storage", type="ext", VDIs=[])
        host = self.pool.add("host", name_label="xs8-master", address=master_address, API_version_major="2",
                             API_version_minor="21")  # fmt: skip
        self.pool.add("pool", name_label="imageport-lab", master=host)
        self.cert, key = make_certificate(directory)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fingerprint(self) -> str:
        """The SHA-256 fingerprint of the stand-in's certificate, as a connector pins it (AA:BB:...)."""
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(self.cert.read_text())).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, 64, 2))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what a test sets up and inspects -------------------------------------------------

    def add_vm(self, name: str, disks: list[Path], *, firmware: str = "uefi", power_state: str = "Running") -> str:
        """A VM with one VBD + VDI per raw file (userdevice 0, 1, ...), plus an empty CD drive."""
        with self.lock:
            vm = self.pool.add("VM", name_label=name, power_state=power_state, is_a_template=False,
                               is_a_snapshot=False, is_control_domain=False, snapshot_of="OpaqueRef:NULL",
                               snapshots=[], VBDs=[], HVM_boot_params={"firmware": firmware, "order": "cd"},
                               snapshot_time="19700101T00:00:00Z")  # fmt: skip
            for n, disk in enumerate(disks):
                vdi = self._add_vdi(f"{name} disk {n}", disk, snapshot_of="OpaqueRef:NULL")
                self._attach(vm, vdi, n)
            cd = self.pool.add("VBD", VM=vm, VDI="OpaqueRef:NULL", device="xvdd", userdevice="3", type="CD",
                               mode="RO", bootable=False, empty=True)  # fmt: skip
            self.pool.get("VM", vm)["VBDs"].append(cd)
            return vm

    def of_class(self, cls: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {ref: dict(rec) for ref, rec in self.pool.objects[cls].items()}

    def _add_vdi(self, label: str, backing: Path, *, snapshot_of: str) -> str:
        size = backing.stat().st_size
        vdi = self.pool.add("VDI", name_label=label, virtual_size=str(size), physical_utilisation=str(size),
                            SR=self.sr, type="user", is_a_snapshot=snapshot_of != "OpaqueRef:NULL",
                            snapshot_of=snapshot_of, snapshots=[], VBDs=[], read_only=False)  # fmt: skip
        self.pool.content[vdi] = backing
        self.pool.get("SR", self.sr)["VDIs"].append(vdi)
        return vdi

    def _attach(self, vm: str, vdi: str, userdevice: int) -> str:
        vbd = self.pool.add("VBD", VM=vm, VDI=vdi, device=f"xvd{chr(ord('a') + userdevice)}",
                            userdevice=str(userdevice), type="Disk", mode="RW", bootable=userdevice == 0,
                            empty=False)  # fmt: skip
        self.pool.get("VM", vm)["VBDs"].append(vbd)
        self.pool.get("VDI", vdi)["VBDs"].append(vbd)
        return vbd

    # --- the API ------------------------------------------------------------------------

    def call(self, address: str, method: str, params: tuple[Any, ...]) -> Any:
        with self.lock:
            self.calls.append(method)
            if address in self.member_addresses:
                raise XapiFailure("HOST_IS_SLAVE", self.master_address)
            if method == "session.login_with_password":
                self._arity(method, params, 4, 2)
                if (params[0], params[1]) != (self.username, self.password):
                    raise XapiFailure("SESSION_AUTHENTICATION_FAILED", str(params[0]),
                                      "Authentication failure")  # fmt: skip
                session = new_ref()
                self.sessions.add(session)
                return session
            if not params or params[0] not in self.sessions:
                raise XapiFailure("SESSION_INVALID", str(params[0] if params else ""))
            session, args = params[0], params[1:]
            if method == "session.logout":
                self.sessions.discard(session)
                return ""
            cls, _, message = method.partition(".")
            action = MESSAGES.get(method)
            if action is not None:
                arity, low = action[1], action[2]
                self._arity(method, args, arity, low)
                return action[0](self, *args)
            if cls in CLASSES:
                return self._generic(cls, message, method, args)
            raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)

    @staticmethod
    def _arity(method: str, args: tuple[Any, ...], most: int, least: int | None = None) -> None:
        if not (least if least is not None else most) <= len(args) <= most:
            raise XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, str(most), str(len(args)))

    def _generic(self, cls: str, message: str, method: str, args: tuple[Any, ...]) -> Any:
        """get_all, get_all_records, get_record, get_by_uuid, get_by_name_label, get_FIELD (datamodel getters)."""
        objects = self.pool.objects[cls]
        if message in ("get_all", "get_all_records"):
            self._arity(method, args, 0)
            return list(objects) if message == "get_all" else {r: dict(v) for r, v in objects.items()}
        self._arity(method, args, 1)
        if message == "get_by_uuid":
            for ref, record in objects.items():
                if record["uuid"] == args[0]:
                    return ref
            raise XapiFailure("UUID_INVALID", cls, str(args[0]))
        if message == "get_by_name_label":
            return [ref for ref, record in objects.items() if record.get("name_label") == args[0]]
        record = self.pool.get(cls, args[0])
        if message == "get_record":
            return dict(record)
        if message.startswith("get_") and message[4:] in record:
            return record[message[4:]]
        raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)

    def vm_snapshot(self, vm: str, new_name: str, ignore_vdis: list[str] | None = None) -> str:
        source = self.pool.get("VM", vm)
        if source["is_a_snapshot"] or source["is_a_template"]:
            raise XapiFailure("VM_IS_TEMPLATE", vm)
        snap = self.pool.add("VM", **{**source, "uuid": str(uuid.uuid4()), "name_label": new_name,
                                      "power_state": "Halted", "is_a_snapshot": True, "snapshot_of": vm,
                                      "snapshots": [], "VBDs": [], "other_config": {},
                                      "snapshot_time": time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())})  # fmt: skip
        for vbd_ref in source["VBDs"]:
            vbd = self.pool.get("VBD", vbd_ref)
            if vbd["type"] != "Disk" or vbd["VDI"] in (ignore_vdis or []):
                continue
            frozen = self.directory / f"{uuid.uuid4()}.raw"
            shutil.copyfile(self.pool.content[vbd["VDI"]], frozen)  # what copy-on-write freezes, copied
            vdi = self._add_vdi(f"{self.pool.get('VDI', vbd['VDI'])['name_label']} (snapshot)", frozen,
                                snapshot_of=vbd["VDI"])  # fmt: skip
            self.pool.get("VDI", vbd["VDI"])["snapshots"].append(vdi)
            self._attach(snap, vdi, int(vbd["userdevice"]))
        source["snapshots"].append(snap)
        return snap

    def vm_destroy(self, vm: str) -> str:
        record = self.pool.get("VM", vm)
        if record["power_state"] != "Halted":
            raise XapiFailure("VM_BAD_POWER_STATE", vm, "halted", record["power_state"].lower())
        for vbd in record["VBDs"]:
            vdi = self.pool.objects["VBD"].pop(vbd)["VDI"]
            if vdi in self.pool.objects["VDI"]:
                self.pool.objects["VDI"][vdi]["VBDs"].remove(vbd)
        parent = self.pool.objects["VM"].get(record["snapshot_of"])
        if parent is not None:
            parent["snapshots"].remove(vm)
        del self.pool.objects["VM"][vm]
        return ""

    def vdi_destroy(self, vdi: str) -> str:
        record = self.pool.get("VDI", vdi)
        for vbd in record["VBDs"]:
            if not self.pool.get("VM", self.pool.get("VBD", vbd)["VM"])["is_a_snapshot"]:
                raise XapiFailure("VDI_IN_USE", vdi, "destroy")
        parent = self.pool.objects["VDI"].get(record["snapshot_of"])
        if parent is not None:
            parent["snapshots"].remove(vdi)
        self.pool.get("SR", record["SR"])["VDIs"].remove(vdi)
        del self.pool.objects["VDI"][vdi]
        backing = self.pool.content.pop(vdi)
        if record["is_a_snapshot"]:
            backing.unlink()
        return ""

    def task_create(self, label: str, description: str) -> str:
        return self.pool.add("task", name_label=label, name_description=description, status="pending",
                             progress=0.0, error_info=[], result="", created=time.time())  # fmt: skip

    def task_destroy(self, task: str) -> str:
        self.pool.get("task", task)
        del self.pool.objects["task"][task]
        return ""

    # --- the HTTP handler ---------------------------------------------------------------

    def export_raw_vdi(self, query: dict[str, str], write: Callable[[bytes], None],
                       start: Callable[[str], None]) -> None:  # fmt: skip
        with self.lock:
            task = query.get("task_id")
            if task is not None:
                self.pool.get("task", task)
            vdi = self.pool.get("VDI", query.get("vdi"))
            backing, size = self.pool.content[query["vdi"]], int(vdi["virtual_size"])
        fmt = query.get("format", "raw")
        if fmt not in ("raw", "vhd"):
            raise XapiFailure("INTERNAL_ERROR", f"Unknown format {fmt}")
        start("application/vhd" if fmt == "vhd" else "application/octet-stream")
        try:
            pieces = _raw_pieces(backing, size) if fmt == "raw" else _vhd_pieces(backing, size)
            for done, data in pieces:
                write(data)
                self._task_progress(task, min(done / max(size, 1), 0.99))
        except OSError as exc:  # the client went away: the task fails, as TaskHelper.failed does
            self._task_end(task, "failure", ["VDI_IO_ERROR", f"Device I/O errors ({exc.strerror})"])
            raise
        self._task_end(task, "success", [])

    def _task_progress(self, task: str | None, progress: float) -> None:
        with self.lock:
            if task is not None and task in self.pool.objects["task"]:
                self.pool.objects["task"][task]["progress"] = progress

    def _task_end(self, task: str | None, status: str, error: list[str]) -> None:
        with self.lock:
            if task is not None and task in self.pool.objects["task"]:
                record = self.pool.objects["task"][task]
                record.update(status=status, error_info=error, progress=1.0 if status == "success" else 0.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _address(self) -> str:
                host = self.headers.get("Host", "")
                return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                params, method = xmlrpc.client.loads(body, use_builtin_types=False)
                try:
                    answer: dict[str, Any] = {"Status": "Success",
                                              "Value": standin.call(self._address(), method or "", params)}
                except XapiFailure as failure:
                    answer = {"Status": "Failure", "ErrorDescription": failure.description}
                except TypeError as exc:
                    answer = {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", str(exc)]}
                data = xmlrpc.client.dumps((answer,), methodresponse=True, allow_none=True).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.close_connection = True
                if url.path != "/export_raw_vdi":
                    self._status(404)
                    return
                if self._address() in standin.member_addresses:
                    self._status(302)  # a member redirects to the host that sees the SR (here: the master)
                    return
                with standin.lock:
                    valid = query.get("session_id") in standin.sessions
                if not valid:
                    self._status(403)
                    return

                def start(content_type: str) -> None:
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Connection", "close")
                    if "task_id" in query:
                        self.send_header("task-id", query["task_id"])
                    self.end_headers()

                try:
                    standin.export_raw_vdi(query, self.wfile.write, start)
                except XapiFailure as failure:
                    standin._task_end(query.get("task_id"), "failure", failure.description)
                    self._status(500 if failure.description[0] != "HANDLE_INVALID" else 404)
                except OSError:
                    pass  # the client dropped the stream; the task says so

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

        return Handler


MESSAGES: dict[str, tuple[Callable[..., Any], int, int]] = {
    # method: (implementation, most args after the session, fewest)
    "VM.snapshot": (XapiStandIn.vm_snapshot, 3, 2),
    "VM.destroy": (XapiStandIn.vm_destroy, 1, 1),
    "VDI.destroy": (XapiStandIn.vdi_destroy, 1, 1),
    "task.create": (XapiStandIn.task_create, 2, 2),
    "task.destroy": (XapiStandIn.task_destroy, 1, 1),
}


def _add_to_other_config(cls: str) -> Callable[..., str]:
    def add(standin: XapiStandIn, ref: str, key: str, value: str) -> str:
        config = standin.pool.get(cls, ref)["other_config"]
        if key in config:
            raise XapiFailure("MAP_DUPLICATE_KEY", cls, "other_config", ref, key)
        config[key] = value
        standin.other_config_written.append((cls, str(standin.pool.get(cls, ref).get("name_label", "")), key, value))
        return ""

    return add


for _cls in ("VM", "VDI"):
    MESSAGES[f"{_cls}.add_to_other_config"] = (_add_to_other_config(_cls), 3, 3)


def _raw_pieces(backing: Path, size: int) -> Any:
    with open(backing, "rb") as f:
        done = 0
        while done < size:
            data = f.read(min(MiB, size - done))
            if not data:
                data = bytes(min(MiB, size - done))
            done += len(data)
            yield done, data


def _vhd_pieces(backing: Path, size: int) -> Any:
    """A dynamic VHD (VHD spec 1.0: footer copy, dynamic header, BAT, blocks of bitmap + data, footer)."""
    blocks = -(-size // VHD_BLOCK)
    bat_bytes = -(-blocks * 4 // 512) * 512
    data_at = 512 + 1024 + bat_bytes
    used: list[int] = []
    with open(backing, "rb") as f:
        for n in range(blocks):
            f.seek(n * VHD_BLOCK)
            if any(f.read(VHD_BLOCK)):
                used.append(n)
    bitmap = 512  # 4096 sectors per 2 MiB block: 512 bytes of bitmap, a whole sector
    bat = [0xFFFFFFFF] * blocks
    for i, n in enumerate(used):
        bat[n] = (data_at + i * (bitmap + VHD_BLOCK)) // 512
    footer = _vhd_footer(size, data_offset=512)
    yield 0, footer
    yield 0, _vhd_dynamic_header(blocks, table_offset=512 + 1024)
    yield 0, struct.pack(f">{blocks}I", *bat) + bytes(bat_bytes - 4 * blocks)
    with open(backing, "rb") as f:
        for n in used:
            f.seek(n * VHD_BLOCK)
            data = f.read(VHD_BLOCK)
            yield min((n + 1) * VHD_BLOCK, size), b"\xff" * bitmap + data + bytes(VHD_BLOCK - len(data))
    yield size, footer


def _checksum(data: bytes) -> int:
    return ~sum(data) & 0xFFFFFFFF


def _vhd_footer(size: int, data_offset: int) -> bytes:
    sectors = min(size // 512, 65535 * 16 * 255)
    heads, spt = 16, 63 if sectors < 65535 * 16 * 63 else 255
    cylinders = sectors // (heads * spt)
    body = struct.pack(">8sIIQI4sI4sQQHBBII16sB427x", b"conectix", 2, 0x00010000, data_offset, 0, b"tap ",
                       0x00010003, b"Wi2k", size, size, cylinders, heads, spt, 3, 0, uuid.uuid4().bytes, 0)  # fmt: skip
    return body[:64] + struct.pack(">I", _checksum(body)) + body[68:]


def _vhd_dynamic_header(blocks: int, table_offset: int) -> bytes:
    body = struct.pack(">8sQQIIII16sII512s24s24s24s24s24s24s24s24s256x", b"cxsparse", 0xFFFFFFFFFFFFFFFF,
                       table_offset, 0x00010000, blocks, VHD_BLOCK, 0, bytes(16), 0, 0, bytes(512),
                       *([bytes(24)] * 8))  # fmt: skip
    return body[:36] + struct.pack(">I", _checksum(body)) + body[40:]
