"""Image files on a vSphere datastore (flat or sparse VMDKs...), read and written over HTTPS."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from imageport.adapters.files import FileAdapter
from imageport.adapters.locations import SEGMENT, Location, escape
from imageport.adapters.protocol import Connectors
from imageport.disks.base import FileSystem
from imageport.models import DatastoreFileRef


class DatastoreAdapter(FileAdapter):
    kind = "datastore"
    ref_type = DatastoreFileRef
    connector_kind = "vsphere"
    schemes = ("datastore",)
    shape = "datastore://CONNECTOR/DATASTORE/path/on/datastore"
    title = "a vSphere datastore file"

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self.schemes[0], field, self.shape)
        loc.options(())
        datastore, path = loc.segments(2)
        return loc.model(DatastoreFileRef, connector=loc.connector, datastore=datastore, path=path)

    def format(self, ref: DatastoreFileRef) -> str:
        return f"datastore://{escape(ref.connector, SEGMENT)}/{escape(ref.datastore, SEGMENT)}/{escape(ref.path)}"

    @contextlib.contextmanager
    def open_read(self, ref: DatastoreFileRef, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        with connectors.build(ref.connector, "vsphere", self.describe(ref)) as session:
            fs = session.datastore_files(ref.datastore)
            try:
                yield fs, ref.path
            finally:
                fs.close()
