"""How imageport marks what it creates, so anything a dead run left behind can be found and removed.

Every CE resource carries the run id, the stage and an expiry time. The reaper
deletes only resources that carry these tags, are past their expiry and whose
run is no longer running; an output that was kept (a prepared disk) loses its
expiry when it is finalized, so it is never reaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imageport.models.fields import CREATED_BY_TAG as CREATED_BY
from imageport.models.fields import EXPIRES_TAG as EXPIRES
from imageport.models.fields import RUN_TAG as RUN
from imageport.models.fields import STAGE_TAG as STAGE


@dataclass(frozen=True)
class CeTags:
    """imageport's marks on a resource, and the user's tags (``user``: the stage's ``tags`` option) beside them."""

    run_id: str
    stage: str
    expires: datetime | None
    user: tuple[tuple[str, str], ...] = ()  # a tuple: the dataclass stays frozen and hashable

    @classmethod
    def for_run(cls, run_id: str, stage: str, ttl_s: float, user: dict[str, str] | None = None) -> CeTags:
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_s)
        return cls(run_id, stage, expires, tuple((user or {}).items()))

    def own(self) -> dict[str, str]:
        """imageport's marks alone (where the user's tags go elsewhere: a vSphere VM's custom attributes)."""
        tags = {CREATED_BY: "imageport", RUN: self.run_id, STAGE: self.stage}
        if self.expires is not None:
            tags[EXPIRES] = self.expires.astimezone(UTC).isoformat(timespec="seconds")
        return tags

    def as_dict(self) -> dict[str, str]:
        """Every tag a resource gets: the user's, then imageport's, which win (the models refuse their names
        anyway): the reaper must find what it made whatever the user asked for."""
        return {**dict(self.user), **self.own()}

    @classmethod
    def from_dict(cls, tags: dict[str, str] | None) -> CeTags | None:
        """The tags of an imageport resource, or None for anything imageport did not mark."""
        tags = tags or {}
        if tags.get(CREATED_BY) != "imageport" or RUN not in tags:
            return None
        expires = None
        if EXPIRES in tags:
            try:
                expires = datetime.fromisoformat(tags[EXPIRES])
            except ValueError:
                expires = datetime.fromtimestamp(0, UTC)  # a mangled expiry counts as long gone
        return cls(tags[RUN], tags.get(STAGE, "?"), expires)

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(UTC)) >= self.expires
