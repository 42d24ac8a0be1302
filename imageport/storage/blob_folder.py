"""Folders of an Azure blob container read with a SAS: where a prepare's installers may come from.

The connector holds the container's URL and a SAS token, a secret like any connector's (registered for
redaction when the config validates; never in a location text, a log or a message). The orchestrator
lists a folder (List Blobs with a ``/`` delimiter: permission ``l``) and reads each blob in ranged Get
Blob calls (permission ``r``); a CE that reaches Azure Storage itself (an Azure CE) fetches the same blob
by its URL and SAS (``url``), so nothing is copied for it. Blob names are ``/``-separated: a folder is a
prefix. Read-only: nothing is ever written here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator

from imageport.credentials import EndpointUrl, SecretsRegistered
from imageport.disks.io import ByteSource, FileSystem, Sink
from imageport.errors import InputError
from imageport.redaction import register_sas
from imageport.storage.azure_errors import translate_azure_errors


class BlobContainerConfig(SecretsRegistered):
    """An Azure blob container and a SAS token that may read (``r``) and list (``l``) it."""

    container_url: EndpointUrl = Field(
        description="The container's URL: https://ACCOUNT.blob.core.windows.net/CONTAINER (no query string)."
    )
    sas: SecretStr = Field(description="SAS token for the container with read and list rights (sp=rl), e.g. "
                                       "sv=...&sp=rl&se=...&sig=... (a leading ? is dropped).")  # fmt: skip

    @field_validator("container_url")
    @classmethod
    def _container(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("give the container's http(s) URL without a query string (the SAS goes in sas)")
        if not parts.path.strip("/"):
            raise ValueError("the URL names no container: https://ACCOUNT.blob.core.windows.net/CONTAINER")
        return value.rstrip("/")

    @field_validator("sas")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip().removeprefix("?")
        if "sig=" not in token:
            raise ValueError("not a SAS token (it has no sig=): copy the token Azure generated for the container")
        return SecretStr(token)

    def build(self) -> BlobContainer:
        return BlobContainer(self)


class BlobContainer:
    """One container, through the SDK's ``ContainerClient`` with the SAS."""

    def __init__(self, config: BlobContainerConfig) -> None:
        self.config = config
        self.display = f"container {config.container_url}"  # no SAS
        self._sas = config.sas.get_secret_value()
        register_sas(f"{config.container_url}?{self._sas}")
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from azure.storage.blob import ContainerClient  # the CLI starts without the Azure SDK

            self._client = ContainerClient.from_container_url(f"{self.config.container_url}?{self._sas}")
        return self._client

    def __enter__(self) -> BlobContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def url(self, name: str) -> str:
        """The blob's URL with the SAS: what a CE that reaches Azure Storage fetches (a secret)."""
        return f"{self.config.container_url}/{quote(name)}?{self._sas}"

    def names(self, folder: str) -> list[str]:
        """The blobs directly in ``folder`` (a prefix; ``""`` is the container's top), by name."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        with translate_azure_errors(f"list {self.display} folder {prefix or '/'}"):
            items = list(self.client().walk_blobs(name_starts_with=prefix or None, delimiter="/"))
        # walk_blobs gives sub-folders as BlobPrefix items, whose names end with the delimiter.
        return sorted(i.name[len(prefix):] for i in items if not i.name.endswith("/"))

    def check(self) -> list[str]:
        """List the container's top (proves the URL, the SAS and its list right)."""
        found = self.names("")
        return [f"listed {self.display}: {len(found)} blob(s) at the top, SAS accepted"]

    def size(self, name: str) -> int:
        with translate_azure_errors(f"read {self.display} blob {name}"):
            return int(self.client().get_blob_client(name).get_blob_properties().size)

    def read(self, name: str, offset: int, length: int) -> bytes:
        with translate_azure_errors(f"read {self.display} blob {name}"):
            return bytes(self.client().download_blob(name, offset=offset, length=length).readall())


class BlobFile(ByteSource):
    """One blob, read in ranges."""

    def __init__(self, container: BlobContainer, name: str) -> None:
        self.container, self.name = container, name
        self.path = f"{container.display}/{name}"
        self.size = container.size(name)

    def stamp(self) -> dict[str, int | str]:
        return {"size": self.size}

    def preadv(self, view: memoryview, offset: int) -> int:
        length = min(len(view), self.size - offset)
        if length <= 0:
            return 0
        data = self.container.read(self.name, offset, length)
        view[: len(data)] = data
        return len(data)


class BlobFolderFileSystem(FileSystem):
    """A container's blobs as files (read-only): paths are blob names."""

    def __init__(self, container: BlobContainer) -> None:
        self.container = container

    def open(self, path: str) -> ByteSource:
        return BlobFile(self.container, path)

    def isfile(self, path: str) -> bool:
        folder, _, name = path.rpartition("/")
        return name in self.container.names(folder)

    def open_sink(self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None,
                  wait_lock: bool = False) -> Sink:  # fmt: skip
        raise InputError(f"{self.container.display}: an installers container is only read, never written")
