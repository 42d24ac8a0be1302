"""The UI's administrator pages: a non-administrator's browser is refused the data their forms edit.

Prefect's UI offers every page to everyone: its permission list is fixed, and ``/ui-settings`` is read
before the login, so it cannot differ per user. The allow-list refuses what those pages save
(connector and deployment writes), but a porter could still open a connector's edit form, fill it,
and learn only at Save that it is refused, or not even then: the form's own validation can stop the
Save before any request. So the gateway refuses a non-administrator the read an edit or create page
loads its form from, when the browser says (``Referer``: the page a same-origin call of the UI comes
from) that the call comes from such a page; the page then shows the refusal instead of a form.

This is a signpost, not the wall: the wall is the allow-list. The same read from a connector's own
page, or by API, is allowed (connectors without secrets are a porter's to list); saving never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from imageport.access.routes import compile_template


@dataclass(frozen=True)
class AdminPage:
    what: str  # as the refusal names it
    page: str  # the UI's route (prefect's ui router), after the UI's base path
    method: str  # the API read the page builds its form from
    template: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(r"(?:.*/)?" + compile_template(self.page.lstrip("/")).pattern + "/?")


ADMIN_PAGES = (
    AdminPage("a connector's edit page", "/blocks/block/{id}/edit", "GET", "/block_documents/{id}"),
    AdminPage("the new-connector page", "/blocks/catalog/{slug}/create", "GET", "/block_types/slug/{slug}"),
    AdminPage("a deployment's edit page", "/deployments/deployment/{id}/edit", "GET", "/deployments/{id}"),
    AdminPage("a deployment's copy page", "/deployments/deployment/{id}/duplicate", "GET", "/deployments/{id}"),
)


def admin_page(referer: str | None, method: str, templates: list[str]) -> AdminPage | None:
    """The administrator page this call loads its form from, if it is one (None: any other call)."""
    if not referer:
        return None
    path = urlsplit(referer).path
    for page in ADMIN_PAGES:
        if page.method == method and page.template in templates and page.pattern.fullmatch(path):
            return page
    return None
