"""Export an AHV VM's disk to a share without touching the VM: clone the disk into an image, download it, delete it.

1. ``POST content/images`` with a ``VmDiskSource`` (the VM disk's extId): Prism copies the disk as
   it is now into a new image (crash-consistent, the VM keeps running); the answer is a task, followed
   to SUCCEEDED (``tasks.wait_for_task``), which names the image.
   Decision: an image, not a recovery point. The image file endpoint is the only v4 download of a
   disk's bytes, and a recovery point would have to be restored into an image first anyway: one
   object to create and delete instead of two, through the vmm SDK alone.
2. Read the image's bytes with ranged GETs (``image_file``) through the disk engine into the output
   format in one pass (``transfer.copy_image``: hashes, verification, temporary name then rename).
3. Delete the image -- also after a failure: ``GET`` for its ETag, ``DELETE`` with ``If-Match``,
   follow the task. The image is named ``imageport-export-RUN`` and its description carries the
   run's tags (``created-by=imageport imageport-run=... imageport-expires=...``), so the reaper finds
   and deletes one a killed run left (``leftover_images``).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from imageport.disks.convert import ConvertResult, Progress
from imageport.disks.io import FileSystem
from imageport.errors import InputError
from imageport.models import DiskFormat
from imageport.platforms.ahv.errors import translate_ahv_errors
from imageport.platforms.ahv.image_file import AhvImageFileSystem
from imageport.platforms.ahv.inventory import find_vm, select_disk
from imageport.platforms.ahv.session import AhvSession
from imageport.platforms.ahv.tasks import affected, task_ext_id, wait_for_task
from imageport.transfer.copy import copy_image

NAME_PREFIX = "imageport-export-"
IMAGE_REL = "vmm:content:image"
TAG = re.compile(r"([a-z][a-z-]*)=(\S+)")
USER_TAGS = " Tags: "
DESCRIPTION_MAX = 1000  # the v4 Image model's limit on description


@dataclass
class AhvExport:
    vm: str
    vm_ext_id: str
    disk: str
    disk_ext_id: str
    image: str  # the temporary image's extId (deleted)
    output: str
    content_hash: str | None
    sha256: str | None
    md5: str | None
    virtual_size: int
    data_written: int
    seconds: float
    resumed_streams: int
    verified: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_tags(marks: dict[str, str], user: dict[str, str] | None = None) -> str:
    """An image description carrying imageport's ``marks`` (``k=v``, what the reaper reads) and the user's tags
    (JSON after ``USER_TAGS``: names may hold spaces). Decision: the description, not categories -- a v4 image
    takes categories only by the extIds of category values defined beforehand in Prism (an admin's setup,
    through another SDK), not free name/value pairs."""
    text = "Made by an imageport export; deleted when it ends. " + " ".join(f"{k}={v}" for k, v in marks.items())
    if user:
        text += USER_TAGS + json.dumps(user, ensure_ascii=False, sort_keys=True)
    if len(text) > DESCRIPTION_MAX:
        raise InputError(f"tags: on Nutanix AHV they go in the export image's description, which takes "
                         f"{DESCRIPTION_MAX} characters; these make {len(text)}: shorten or drop some")  # fmt: skip
    return text


def tags_of(description: str | None) -> dict[str, str]:
    """imageport's marks in an image's description (never what the user's tags say)."""
    return dict(TAG.findall((description or "").split(USER_TAGS, 1)[0]))


def user_tags_of(description: str | None) -> dict[str, str]:
    """The user's tags in an image's description."""
    parts = (description or "").split(USER_TAGS, 1)
    return json.loads(parts[1]) if len(parts) == 2 else {}


def export_vm_disk(
    session: AhvSession,
    vm_ident: str,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat = DiskFormat.VHDX,
    *,
    tags: dict[str, str],
    user_tags: dict[str, str] | None = None,
    disk: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    digests: bool = False,
    wait_lock: bool = False,
    verify: str = "auto",
) -> AhvExport:
    """See the module docstring. ``tags`` mark the temporary image for the reaper; ``user_tags`` go beside them."""
    from ntnx_vmm_py_client import Image, ImageType, VmDiskSource

    vm = find_vm(session, vm_ident)
    target = select_disk(vm, disk)
    name = f"{NAME_PREFIX}{tags.get('imageport-run', uuid.uuid4().hex[:8])}"[:80]
    what = f"clone VM {vm.name} disk {target.label} into image {name}"
    body = Image(name=name, description=describe_tags(tags, user_tags), type=ImageType.DISK_IMAGE,
                 source=VmDiskSource(ext_id=target.disk_ext_id))  # fmt: skip
    with translate_ahv_errors(what):
        accepted = session.images_api().create_image(body)
    task_id = task_ext_id(accepted)
    try:
        task = wait_for_task(session, task_id, what)
    except BaseException:
        _delete_made_by(session, task_id, what)  # a task that failed late may still have made the image
        raise
    image_id = affected(task, IMAGE_REL)
    try:
        with translate_ahv_errors(f"read image {image_id}"):
            image = session.images_api().get_image_by_id(image_id).data
        files = AhvImageFileSystem(session, {image_id: int(image.size_bytes or target.capacity_bytes)})
        try:
            result: ConvertResult = copy_image(
                image_id, files, output, output_fs, fmt, overwrite=overwrite, progress=progress,
                sha256=digests, md5=digests, wait_lock=wait_lock, verify=verify,
                source_format=DiskFormat.RAW,  # a DISK_IMAGE's file is the disk's bytes, whatever they hold
            )  # fmt: skip
        finally:
            files.close()
    finally:
        delete_image(session, image_id)
    return AhvExport(
        vm.name, vm.ext_id, target.label, target.disk_ext_id, image_id, output, result.content_hash,
        result.sha256, result.md5, result.virtual_size, result.data_written, result.seconds, files.resumed,
        verified=result.verified,
    )  # fmt: skip


def delete_image(session: AhvSession, image_id: str) -> None:
    """Delete an image: its current ETag as ``If-Match`` (v4 refuses a delete without one), then the task."""
    from ntnx_vmm_py_client import ApiClient

    api = session.images_api()
    what = f"delete image {image_id}"
    with translate_ahv_errors(what):
        etag = ApiClient.get_etag(api.get_image_by_id(image_id))
        accepted = api.delete_image_by_id(image_id, if_match=etag)
    wait_for_task(session, task_ext_id(accepted), what)


def _delete_made_by(session: AhvSession, task_id: str, what: str) -> None:
    """After a failed or abandoned create: delete the image the task names, if it names one."""
    with contextlib.suppress(Exception):  # the original failure is what the caller must see
        with translate_ahv_errors(f"{what}: read task {task_id}"):
            task = session.tasks_api().get_task_by_id(task_id).data
        delete_image(session, affected(task, IMAGE_REL))


def leftover_images(session: AhvSession) -> list[tuple[str, str, dict[str, str]]]:
    """Images an export made (by name and description tags): (extId, name, tags), for the reaper."""
    from imageport.platforms.ahv.inventory import list_all

    api = session.images_api()
    images = list_all(lambda **page: api.list_images(_filter=f"startswith(name, '{NAME_PREFIX}')", **page),
                  f"list images on {session.display}")  # fmt: skip
    found = []
    for image in images:
        tags = tags_of(image.description)
        if str(image.name or "").startswith(NAME_PREFIX) and tags.get("created-by") == "imageport":
            found.append((str(image.ext_id), str(image.name), tags))
    return found
