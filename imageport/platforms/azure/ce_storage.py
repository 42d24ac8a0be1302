"""The blobs that carry the agent bundle, its job and its result between the orchestrator and an Azure CE.

They live in one container of the connector's storage account
(``ce_storage_account_url``). The CE never holds a key: it gets one SAS per
blob, short-lived -- read-only for the bundle and the job, create+write-only
for its result blob (it cannot read, list or overwrite anything else). Each
blob carries the run's tags as blob index tags, so the reaper finds what a
dead run left; every run deletes its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imageport.errors import InputError, NotFound
from imageport.platforms.azure.session import AzureSession
from imageport.storage.azure_errors import translate_azure_errors


class CeStorage:
    def __init__(self, session: AzureSession) -> None:
        cfg = session.config
        if cfg.ce_storage_account_url is None or cfg.ce_storage_account_key is None:
            raise InputError(
                f"{session.display}: the connector names no ce_storage_account_url/ce_storage_account_key; a "
                "compositing engine gets its agent bundle, job and result through blobs in that storage account"
            )
        from azure.storage.blob import BlobServiceClient

        self.key = cfg.ce_storage_account_key.get_secret_value()
        self.service = BlobServiceClient(cfg.ce_storage_account_url, credential=self.key)
        self.account = self.service.account_name
        self.container_name = cfg.ce_storage_container
        self.container = self.service.get_container_client(self.container_name)
        self.display = f"{cfg.ce_storage_account_url.rstrip('/')}/{self.container_name}"

    def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with translate_azure_errors(f"create container {self.display}", "storage"):
            try:
                self.container.create_container()
            except ResourceExistsError:
                return

    def upload(self, name: str, source: Path | bytes | Iterable[bytes], tags: dict[str, str], length: int = 0
               ) -> None:  # fmt: skip
        """Upload a local file, bytes, or ``length`` bytes arriving as pieces (a file on a share)."""
        with translate_azure_errors(f"upload {self.display}/{name}", "storage"):
            blob = self.container.get_blob_client(name)
            if isinstance(source, bytes):
                blob.upload_blob(source, overwrite=True, tags=tags)
            elif not isinstance(source, Path):
                blob.upload_blob(source, length=length, overwrite=True, tags=tags)
            else:
                with open(source, "rb") as f:
                    blob.upload_blob(f, overwrite=True, tags=tags, max_concurrency=4)

    def url(self, name: str, ttl_s: float, *, write: bool = False) -> str:
        """A SAS URL for one blob: read-only, or create+write-only (no read, no delete, no list)."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        permission = BlobSasPermissions(create=True, write=True) if write else BlobSasPermissions(read=True)
        now = datetime.datetime.now(datetime.UTC)
        sas = generate_blob_sas(
            self.account, self.container_name, name, account_key=self.key, permission=permission,
            start=now - datetime.timedelta(minutes=5), expiry=now + datetime.timedelta(seconds=ttl_s),
        )  # fmt: skip
        return f"{self.container.url}/{name}?{sas}"

    def download(self, name: str) -> bytes:
        with translate_azure_errors(f"download {self.display}/{name}", "storage"):
            return bytes(self.container.get_blob_client(name).download_blob().readall())

    def delete(self, name: str) -> None:
        """Delete one blob; a missing one is not an error."""
        try:
            with translate_azure_errors(f"delete {self.display}/{name}", "storage"):
                self.container.get_blob_client(name).delete_blob()
        except NotFound:
            return

    def list_tagged(self) -> list[tuple[str, dict[str, str]]]:
        """(name, index tags) of every blob in the container (none if it does not exist yet)."""
        found: list[tuple[str, dict[str, str]]] = []
        try:
            with translate_azure_errors(f"list {self.display}", "storage"):
                for item in self.container.list_blobs(include=["tags"]):
                    tags: Any = item.tags or {}
                    found.append((item.name, dict(tags)))
        except NotFound:
            return []
        return found
