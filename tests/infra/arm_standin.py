"""A local stand-in for Azure Resource Manager (which has no emulator) -- only what imageport calls.

It speaks HTTPS with a certificate made at start-up (azure-core refuses bearer
tokens over plain HTTP), issues tokens through a real OpenID Connect flow (so
azure-identity's ClientSecretCredential runs unmodified), and answers with
real long-running-operation semantics: 201/202, ``Azure-AsyncOperation`` to
poll (``retry-after-ms``), ``Location`` for the final result -- so the
azure-mgmt-compute pollers run unmodified.

It enforces Azure's documented managed-disk upload rules:
- create with ``createOption: Upload`` needs 20 MiB + 512 <= uploadSizeBytes
  <= 32 TiB + 512 and (uploadSizeBytes - 512) a whole number of MiB;
- the disk moves ReadyToUpload -> (grant Write) ActiveUpload -> (revoke) Unattached;
- a write SAS exists only between grant and revoke (the SAS's blob is in Azurite:
  the data path is real);
- at revoke the last 512 bytes must be a valid fixed-VHD footer for exactly the
  uploaded size, or the operation fails with ``InvalidVhd``.

Snapshots: ``createOption: Copy`` from a managed disk that is not mid-upload
(a point-in-time copy of its pages into a blob of their own), read grants only.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.infra import arm_policy
from tests.infra.arm_policy import Refusal
from tests.infra.arm_vms import VmHost

MiB = 1024 * 1024
# azure-core treats "Retry-After: 0" as absent and waits its 30 s default; Azure's
# millisecond header says "poll again soon" in a way the pollers honour.
POLL_SOON = {"retry-after-ms": "20"}
# groups: subscription, resource group, "disks" or "snapshots", name, access action
RESOURCE = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/(disks|snapshots)/([^/]+)"
    r"(/beginGetAccess|/endGetAccess)?$",
    re.IGNORECASE,
)
RESOURCE_GROUP = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)$", re.IGNORECASE)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imageport ARM stand-in")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "arm-cert.pem", directory / "arm-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def valid_fixed_footer(footer: bytes, size: int) -> bool:
    if len(footer) != 512 or footer[:8] != b"conectix":
        return False
    disk_type, stored = struct.unpack_from(">II", footer, 60)
    current = struct.unpack_from(">Q", footer, 48)[0]
    total = sum(footer) - sum(footer[64:68])
    return disk_type == 2 and stored == (~total) & 0xFFFFFFFF and current == size


class ArmStandIn:
    def __init__(
        self,
        directory: Path,
        blob_service: Any,
        tenant: str,
        client_id: str,
        client_secret: str,
        subscription: str,
        resource_groups: dict[str, str],
    ) -> None:
        self.blobs = blob_service
        self.container = blob_service.get_container_client("md-impexp")
        # Azure answers a disk's SAS on a storage host of its own (md-impexp-*.blob.storage.azure.net), not the
        # account's: a test may put that host behind a proxy (None: Azurite's container URL).
        self.sas_base: str | None = None
        self.container.create_container()
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.subscription = subscription
        self.resource_groups = {k.lower(): v for k, v in resource_groups.items()}
        self.disks: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        # (action, "rg/name", access) of every grant and revoke, in order: for tests to see who ended which grant
        self.access_log: list[tuple[str, str, str]] = []
        # Every resource as it was created: (type, name, tags) -- what a test reads after the run deleted it.
        self.created: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.vms = VmHost(self)
        self.cert, key = make_certificate(directory)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.vms.sandbox.close()

    # --- the operations ------------------------------------------------------------------

    def _operation(self, result: dict[str, Any] | None = None, error: dict[str, str] | None = None) -> str:
        op_id = uuid.uuid4().hex
        self.operations[op_id] = {"polls": 0, "result": result or {}, "error": error}
        return op_id

    def _blob_name(self, rg: str, name: str, kind: str = "disks") -> str:
        return f"{rg.lower()}--{name.lower()}.vhd" if kind == "disks" else f"{rg.lower()}--snap--{name.lower()}.vhd"

    def table(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.disks if kind.lower() == "disks" else self.snapshots

    def _resource_id(self, rg: str, kind: str, name: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"

    def _snapshot_json(self, rg: str, name: str) -> dict[str, Any]:
        snap = self.snapshots[f"{rg.lower()}/{name.lower()}"]
        return {
            "id": self._resource_id(rg, "snapshots", name),
            "name": name,
            "type": "Microsoft.Compute/snapshots",
            "location": snap["location"],
            "tags": snap["tags"],
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": snap["source_id"]},
                "diskSizeBytes": snap["upload_size"] - 512,
                "diskState": snap["state"],
                "hyperVGeneration": snap["hyper_v_generation"],
                "osType": snap["os_type"],
                "encryption": arm_policy.encryption(snap.get("encryption")),
                "incremental": False,
                "provisioningState": "Succeeded",
            },
        }

    def create_snapshot(self, rg: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        creation = body.get("properties", {}).get("creationData", {})
        if creation.get("createOption") != "Copy":
            return 400, _err("InvalidParameter", "only createOption Copy is implemented by the stand-in"), None
        try:
            source_rg, source_name, _, disk = self._copy_source(creation, ("disks",), "snapshots", rg, name)
        except Refusal as refusal:
            return refusal.reply
        key = f"{rg.lower()}/{name.lower()}"
        # the data: a point-in-time copy of the disk's pages, sparse as the source
        self._copy_pages(self._blob_name(source_rg, source_name), self._blob_name(rg, name, "snapshots"),
                         disk["upload_size"])  # fmt: skip
        self.created.append(("snapshot", name, dict(body.get("tags") or {})))
        self.snapshots[key] = {
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "upload_size": disk["upload_size"],
            "state": "Unattached",
            "source_id": creation["sourceResourceId"],
            "hyper_v_generation": disk["hyper_v_generation"],
            "os_type": disk["os_type"],
            "encryption": arm_policy.encryption(disk.get("encryption")),
        }
        doc = self._snapshot_json(rg, name)
        doc["properties"]["provisioningState"] = "Updating"
        return 202, doc, self._operation()

    def _copy_source(
        self, creation: dict[str, Any], kinds: tuple[str, ...], target: str, rg: str, name: str
    ) -> tuple[str, str, str, dict[str, Any]]:
        """(resource group, name, kind, entry) of a Copy's source, or ``Refusal`` with what Azure answers:
        a source of another kind or subscription, a missing one, one mid-upload, or a taken target name."""
        source = RESOURCE.match(str(creation.get("sourceResourceId", "")))
        if not source or source.group(1) != self.subscription or source.group(3).lower() not in kinds:
            allowed = " or ".join(k[:-1] for k in kinds)
            raise Refusal(400, "InvalidParameter", f"sourceResourceId must be a {allowed} of this subscription")
        kind = source.group(3).lower()
        origin = self.table(kind).get(f"{source.group(2).lower()}/{source.group(4).lower()}")
        if origin is None:
            raise Refusal(404, "ResourceNotFound", f"{kind[:-1]} {source.group(4)} not found")
        if origin["state"] in ("ReadyToUpload", "ActiveUpload"):
            raise Refusal(409, "OperationNotAllowed", f"cannot copy a disk in state {origin['state']}")
        if f"{rg.lower()}/{name.lower()}" in self.table(target):
            raise Refusal(409, "Conflict", f"{target[:-1]} {name} exists; delete it first")
        return source.group(2), source.group(4), kind, origin

    def _copy_pages(self, source_blob: str, target_blob: str, size: int) -> None:
        src = self.container.get_blob_client(source_blob)
        dst = self.container.get_blob_client(target_blob)
        dst.create_page_blob(size=size)
        for r in src.list_page_ranges():
            start = r.start
            while start <= r.end:
                n = min(4 * MiB, r.end + 1 - start)
                dst.upload_page(src.download_blob(offset=start, length=n).readall(), offset=start, length=n)
                start += n

    def _disk_json(self, rg: str, name: str) -> dict[str, Any]:
        disk = self.disks[f"{rg.lower()}/{name.lower()}"]
        return {
            "id": self._resource_id(rg, "disks", disk.get("name", name)),
            "name": disk.get("name", name),
            "type": "Microsoft.Compute/disks",
            "location": disk["location"],
            "tags": disk["tags"],
            "sku": {"name": disk["sku"]},
            "properties": {
                "creationData": disk.get("creation")
                or {"createOption": "Upload", "uploadSizeBytes": disk["upload_size"]},
                "diskSizeGB": -(-(disk["upload_size"] - 512) // (1024 * MiB)),
                "diskSizeBytes": disk["upload_size"] - 512,
                "diskState": disk["state"],
                "hyperVGeneration": disk["hyper_v_generation"],
                "osType": disk["os_type"],
                "encryption": arm_policy.encryption(disk.get("encryption")),
                "provisioningState": "Succeeded",
            },
        }

    def create_disk(self, rg: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        props = body.get("properties", {})
        creation = props.get("creationData", {})
        if creation.get("createOption") == "Copy":
            return self._copy_disk(rg, name, body)
        if creation.get("createOption") != "Upload":
            return 400, _err("InvalidParameter", "the stand-in implements createOption Upload or Copy"), None
        size = int(creation.get("uploadSizeBytes") or 0)
        if not (20 * MiB + 512 <= size <= 32 * 1024 * 1024 * MiB + 512) or (size - 512) % MiB:
            return (
                400,
                _err(
                    "InvalidParameter",
                    f"uploadSizeBytes {size} must be N MiB + 512 bytes, from 20 MiB + 512 to 32 TiB + 512",
                ),
                None,
            )
        key = f"{rg.lower()}/{name.lower()}"
        if key in self.disks:
            return 409, _err("Conflict", f"disk {name} exists; delete it first"), None
        self.container.get_blob_client(self._blob_name(rg, name)).create_page_blob(size=size)
        self.created.append(("disk", name, dict(body.get("tags") or {})))
        self.disks[key] = {
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "sku": (body.get("sku") or {}).get("name", "Standard_LRS"),
            "upload_size": size,
            "state": "ReadyToUpload",
            "hyper_v_generation": props.get("hyperVGeneration", "V1"),
            "os_type": props.get("osType"),
            "encryption": arm_policy.encryption(props.get("encryption")),
        }
        doc = self._disk_json(rg, name)
        doc["properties"]["provisioningState"] = "Updating"
        return 202, doc, self._operation()  # Azure answers a disk PUT with 202 Accepted + an async operation

    def _copy_disk(self, rg: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        """``createOption: Copy`` from a disk or snapshot: a full copy of its pages, ready to attach."""
        creation = body["properties"]["creationData"]
        try:
            source_rg, source_name, kind, origin = self._copy_source(
                creation, ("disks", "snapshots"), "disks", rg, name
            )
            arm_policy.check_copy(name, body, origin)
        except Refusal as refusal:
            return refusal.reply
        key = f"{rg.lower()}/{name.lower()}"
        self._copy_pages(self._blob_name(source_rg, source_name, kind), self._blob_name(rg, name),
                         origin["upload_size"])  # fmt: skip
        props = body.get("properties", {})
        self.created.append(("disk", name, dict(body.get("tags") or {})))
        self.disks[key] = {
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "sku": (body.get("sku") or {}).get("name", "Standard_LRS"),
            "upload_size": origin["upload_size"],
            "state": "Unattached",
            "hyper_v_generation": props.get("hyperVGeneration") or origin["hyper_v_generation"],
            "os_type": props.get("osType") or origin["os_type"],
            "creation": {"createOption": "Copy", "sourceResourceId": creation["sourceResourceId"]},
            "encryption": arm_policy.encryption(props.get("encryption")),
        }
        doc = self._disk_json(rg, name)
        doc["properties"]["provisioningState"] = "Updating"
        return 202, doc, self._operation()

    def update_tags(
        self, rg: str, name: str, kind: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], str | None]:
        entry = self.table(kind).get(f"{rg.lower()}/{name.lower()}")
        if entry is None:
            return 404, _err("ResourceNotFound", f"{kind[:-1]} {name} not found"), None
        if "tags" in body:
            entry["tags"] = body["tags"] or {}
        doc = self._disk_json(rg, name) if kind == "disks" else self._snapshot_json(rg, name)
        return 202, doc, self._operation(result=doc)

    def grant(
        self, rg: str, name: str, body: dict[str, Any], kind: str = "disks"
    ) -> tuple[int, dict[str, Any], str | None]:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        disk = self.table(kind)[f"{rg.lower()}/{name.lower()}"]
        access = body.get("access")
        allowed = {"Write": ("ReadyToUpload", "ActiveUpload"), "Read": ("Unattached", "ActiveSAS")}.get(access, ())
        if kind.lower() == "snapshots" and access != "Read":
            allowed = ()  # a snapshot is read-only
        if disk["state"] not in allowed:
            return 409, _err("OperationNotAllowed", f"cannot grant {access} in state {disk['state']}"), None
        seconds = int(body.get("durationInSeconds") or 3600)
        sas = generate_blob_sas(
            self.blobs.account_name,
            "md-impexp",
            self._blob_name(rg, name, kind),
            account_key=self.blobs.credential.account_key,
            permission=BlobSasPermissions(read=True, write=access == "Write"),
            expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds),
        )
        disk["state"] = "ActiveUpload" if access == "Write" else "ActiveSAS"
        disk["sas"] = sas
        self.access_log.append(("grant", f"{rg.lower()}/{name.lower()}", access))
        url = f"{self.sas_base or self.container.url}/{self._blob_name(rg, name, kind)}?{sas}"
        return 202, {}, self._operation(result={"accessSAS": url})

    def revoke(self, rg: str, name: str, kind: str = "disks") -> tuple[int, dict[str, Any], str | None]:
        disk = self.table(kind)[f"{rg.lower()}/{name.lower()}"]
        self.access_log.append(("revoke", f"{rg.lower()}/{name.lower()}", disk["state"]))
        if disk["state"] == "ActiveSAS":  # end of a read grant: nothing to validate
            disk.pop("sas", None)
            disk["state"] = "Unattached"
            return 202, {}, self._operation()
        if disk["state"] != "ActiveUpload":
            return 202, {}, self._operation()
        size = disk["upload_size"]
        blob = self.container.get_blob_client(self._blob_name(rg, name))
        footer = blob.download_blob(offset=size - 512, length=512).readall()
        disk.pop("sas", None)  # the write SAS dies with the grant, footer or not
        if not valid_fixed_footer(footer, size - 512):
            disk["state"] = "ReadyToUpload"
            return (
                202,
                {},
                self._operation(
                    error={
                        "code": "InvalidVhd",
                        "message": "The uploaded VHD is not a valid fixed VHD of the upload size",
                    }
                ),
            )
        disk["state"] = "Unattached"
        return 202, {}, self._operation()

    def delete(self, rg: str, name: str, kind: str = "disks") -> tuple[int, dict[str, Any], str | None]:
        key = f"{rg.lower()}/{name.lower()}"
        if (failed := self.vms.injected_delete_failure(name)) is not None:
            return failed
        if key not in self.table(kind):
            return 204, {}, None
        if self.table(kind)[key]["state"] == "Attached":
            return 409, _err("OperationNotAllowed", f"disk {name} is attached to a VM"), None
        entry = self.table(kind).pop(key)
        if not entry.get("no_blob"):
            self.container.get_blob_client(self._blob_name(rg, name, kind)).delete_blob()
        return 202, {}, self._operation()

    def sas_is_live(self, rg: str, name: str) -> bool:
        return "sas" in self.disks.get(f"{rg.lower()}/{name.lower()}", {})

    # --- HTTP ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        arm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(
                self,
                status: int,
                body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = json.dumps(body).encode() if body is not None and status != 204 else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-ms-request-id", uuid.uuid4().hex)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                return json.loads(raw) if raw else {}

            def _authorized(self) -> bool:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token in arm.tokens:
                    return True
                self._reply(401, _err("InvalidAuthenticationToken", "missing or unknown bearer token"))
                return False

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == f"/{arm.tenant}/v2.0/.well-known/openid-configuration":
                    base = f"{arm.url}/{arm.tenant}"
                    return self._reply(
                        200,
                        {
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "issuer": f"{base}/v2.0",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                        },
                    )
                if not self._authorized():
                    return None
                if path.startswith("/operations/"):
                    op = arm.operations.get(path.split("/")[2])
                    if op is None:
                        return self._reply(404, _err("NotFound", "no such operation"))
                    op["polls"] += 1
                    # really long-running: the first poll says InProgress, and a running script keeps it so
                    if op["polls"] < 2 or ("pending" in op and not op["pending"].is_set()):
                        return self._reply(200, {"status": "InProgress"}, POLL_SOON)
                    if op["error"]:
                        return self._reply(200, {"status": "Failed", "error": op["error"]})
                    return self._reply(200, {"status": "Succeeded"})
                if path.startswith("/results/"):
                    op = arm.operations.get(path.split("/")[2])
                    return self._reply(200, op["result"] if op else {})
                if m := RESOURCE_GROUP.match(path):
                    location = arm.resource_groups.get(m.group(2).lower())
                    if m.group(1) != arm.subscription or location is None:
                        return self._reply(404, _err("ResourceGroupNotFound", f"resource group {m.group(2)} not found"))
                    return self._reply(
                        200,
                        {"name": m.group(2), "location": location, "properties": {"provisioningState": "Succeeded"}},
                    )
                if (m := RESOURCE.match(path)) and not m.group(5):
                    rg, kind, name = m.group(2), m.group(3).lower(), m.group(4)
                    with arm.lock:
                        if f"{rg.lower()}/{name.lower()}" not in arm.table(kind):
                            return self._reply(404, _err("ResourceNotFound", f"{kind[:-1]} {name} not found"))
                        doc = arm._disk_json(rg, name) if kind == "disks" else arm._snapshot_json(rg, name)
                        return self._reply(200, doc)
                if self._vm_host("GET", path, {}):
                    return None
                return self._reply(404, _err("NotFound", f"the stand-in does not implement GET {path}"))

            def _vm_host(self, method: str, path: str, body: dict[str, Any]) -> bool:
                """VMs, NICs, run-command and listings (tests/infra/arm_vms.py); False if not theirs."""
                with arm.lock:
                    reply = arm.vms.handle(method, path, body)
                if reply is None:
                    return False
                if method == "GET":
                    self._reply(reply[0], reply[1])
                else:
                    self._lro(*reply)
                return True

            def do_PATCH(self) -> None:
                if not self._authorized():
                    return
                m = RESOURCE.match(urlsplit(self.path).path)
                if not m or m.group(5):
                    return self._reply(404, _err("NotFound", "not implemented"))
                with arm.lock:
                    self._lro(*arm.update_tags(m.group(2), m.group(4), m.group(3).lower(), self._body()))

            def _lro(self, status: int, body: dict[str, Any], op_id: str | None) -> None:
                headers = dict(POLL_SOON)
                if op_id:
                    headers["Azure-AsyncOperation"] = f"{arm.url}/operations/{op_id}"
                    headers["Location"] = f"{arm.url}/results/{op_id}"
                self._reply(status, body, headers)

            def do_PUT(self) -> None:
                if not self._authorized():
                    return
                path = urlsplit(self.path).path
                body = self._body()
                if self._vm_host("PUT", path, body):
                    return None
                m = RESOURCE.match(path)
                if not m or m.group(5):
                    return self._reply(404, _err("NotFound", "not implemented"))
                create = arm.create_disk if m.group(3).lower() == "disks" else arm.create_snapshot
                with arm.lock:
                    self._lro(*create(m.group(2), m.group(4), body))

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                if path == f"/{arm.tenant}/oauth2/v2.0/token":
                    form = self._body()
                    if form.get("client_id") != arm.client_id or form.get("client_secret") != arm.client_secret:
                        return self._reply(
                            401,
                            {
                                "error": "invalid_client",
                                "error_description": "AADSTS7000215: Invalid client secret provided.",
                            },
                        )
                    token = uuid.uuid4().hex
                    arm.tokens.add(token)
                    return self._reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
                if not self._authorized():
                    return None
                body = self._body()
                if self._vm_host("POST", path, body):
                    return None
                m = RESOURCE.match(path)
                if not m or not m.group(5):
                    return self._reply(404, _err("NotFound", "not implemented"))
                rg, kind, name = m.group(2), m.group(3).lower(), m.group(4)
                with arm.lock:
                    if f"{rg.lower()}/{name.lower()}" not in arm.table(kind):
                        return self._reply(404, _err("ResourceNotFound", f"{kind[:-1]} {name} not found"))
                    if m.group(5).lower() == "/begingetaccess":
                        return self._lro(*arm.grant(rg, name, body, kind))
                    return self._lro(*arm.revoke(rg, name, kind))

            def do_DELETE(self) -> None:
                if not self._authorized():
                    return
                if self._vm_host("DELETE", urlsplit(self.path).path, {}):
                    return None
                m = RESOURCE.match(urlsplit(self.path).path)
                if not m or m.group(5):
                    return self._reply(404, _err("NotFound", "not implemented"))
                with arm.lock:
                    self._lro(*arm.delete(m.group(2), m.group(4), m.group(3).lower()))

        return Handler


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
