"""What the two file kinds (a local-directory file, an SMB share file) share: text, identity, export."""

from __future__ import annotations

import json
from typing import Any

from imageport.adapters.locations import Location, escape, query_text
from imageport.adapters.protocol import Connectors, DiskAdapter
from imageport.disks.detect import open_disk
from imageport.disks.fingerprint import fingerprint
from imageport.disks.partitions import partition_style
from imageport.errors import FormatError
from imageport.preflight.limits import EXISTS, SourceFacts

FILE_OPTIONS = ("format",)


class FileAdapter(DiskAdapter):
    """An image file under a connector's root: ``SCHEME://CONNECTOR/path[?format=FMT]``."""

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self._scheme(text), field, self.shape)
        options = loc.options(FILE_OPTIONS)
        fields: dict[str, Any] = {"connector": loc.connector, "path": loc.decode(loc.rest)}
        if "format" in options:
            fields["format"] = options["format"]
        return loc.model(self.ref_type, **fields)

    def _scheme(self, text: str) -> str:
        return next((s for s in self.schemes if text.startswith(f"{s}://")), self.schemes[0])

    def format(self, ref: Any) -> str:
        stated = ref.format.value if ref.format is not None else None
        return f"{self.schemes[0]}://{escape(ref.connector)}/{escape(ref.path)}{query_text(format=stated)}"

    def name(self, ref: Any) -> str:
        return str(ref.path)

    def open_write(self, ref: Any, connectors: Connectors) -> Any:
        return self.open_read(ref, connectors)  # a file is written where it is read

    def identity(self, ref: Any, connectors: Connectors) -> str:
        """An image file by its source fingerprint (any edit changes it); a file that is no image by its stamp."""
        with self.open_read(ref, connectors) as (fs, path):
            where = f"{ref.kind} {ref.connector}/{path}"
            if not fs.isfile(path):
                return "missing"
            try:
                with open_disk(path, fs=fs) as reader:
                    return f"{where} {fingerprint(reader).digest}"
            except FormatError:
                source = fs.open(path)
                try:
                    return f"{where} {json.dumps(source.stamp(), sort_keys=True)}"
                finally:
                    source.close()

    def source_facts(self, ref: Any, connectors: Connectors) -> SourceFacts:
        """The partition style from the image's first sectors (any container, any store) and its virtual size."""
        stated = getattr(ref, "format", None)  # a datastore file states none
        with self.open_read(ref, connectors) as (fs, path), open_disk(path, stated, fs=fs) as reader:
            style = partition_style(reader)
            return SourceFacts(f"the source disk {self.describe(ref)}", style.firmware, style, reader.virtual_size)

    def output_exists(self, ref: Any, connectors: Connectors) -> str | None:
        with self.open_write(ref, connectors) as (fs, path):
            return EXISTS if fs.isfile(path) else None
