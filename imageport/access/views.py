"""What a non-administrator sees of an answer the allow-list lets them have: Prefect's server settings.

``GET /admin/settings`` is read by the UI on every page (the sidebar and the dashboard look up whether
to show promotional content; the Settings page lists the whole document), so a porter refused it
gets an error toast on every page. Prefect masks its ``SecretStr`` settings (database URL and
password, auth strings, API key) but not the rest, which tells a porter what they have no use for
and some of it is sensitive: ``server.docket.url`` (a Redis URL, with its password when Redis has
one), the database's host, port, user and name, the server's file paths (``home``, TLS key files),
its CORS policy. Non-administrators get only the settings listed here, so a setting a new Prefect
version adds stays hidden from them, as an unlisted route does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Dotted paths into Prefect's settings document (``prefect.settings.Settings``, nested as it answers).
SHOWN_SETTINGS = ("server.ui.enabled", "server.ui.v2_enabled", "server.ui.show_promotional_content")


def shown_settings(document: Any) -> dict[str, Any]:
    """Only ``SHOWN_SETTINGS`` of the document, in its own nesting (a listed path it lacks is left out)."""
    shown: dict[str, Any] = {}
    for path in SHOWN_SETTINGS:
        *parents, leaf = path.split(".")
        source, target = document, shown
        for key in parents:
            source = source.get(key) if isinstance(source, dict) else None
            target = target.setdefault(key, {})
        if isinstance(source, dict) and leaf in source:
            target[leaf] = source[leaf]
    return shown


# (method, route template) -> the view of its answer that non-administrators get.
VIEWS: dict[tuple[str, str], Callable[[Any], Any]] = {("GET", "/admin/settings"): shown_settings}
