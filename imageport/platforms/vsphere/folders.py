"""Datastore folders as the vSphere API lists them (the datastore browser).

The HTTP ``/folder`` endpoint answers a folder with an HTML page meant for people; the browser's
``SearchDatastore_Task`` is the API's listing, so an installers folder on a datastore is listed here.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from imageport.errors import PlatformNotFound
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.waiting import wait_for_task


def list_datastore_folder(session: Any, datastore: str, folder: str) -> list[str]:
    """The file names directly in ``[datastore] folder`` (the datastore browser: the HTTP ``/folder`` endpoint
    answers a folder with an HTML page, not a listing an API promises); a missing folder is ``NotFound``."""
    si = session.si or session.connect()
    dc = session.datacenter()
    store = next((ds for ds in dc.datastore if ds.name == datastore), None)
    if store is None:
        raise PlatformNotFound(f"{session.display}: no datastore {datastore!r} in datacenter {dc.name}")
    where = f"[{datastore}] {folder.strip('/')}"
    # matchPattern ``*`` spelled out: the API says a missing pattern matches every file, vcsim matches none.
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"],
                                                details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True))
    with translate_vsphere_errors(f"list {where}"):
        task = store.browser.SearchDatastore_Task(datastorePath=where, searchSpec=spec)
    result = wait_for_task(si, task, f"list {where}")
    return sorted(f.path for f in (result.file or []) if not isinstance(f, vim.host.DatastoreBrowser.FolderInfo))
