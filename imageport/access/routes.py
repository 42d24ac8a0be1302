"""Which of Prefect's route templates a request path is: matched the way Starlette matches them.

Built from the server's own OpenAPI document (every HTTP route) plus the allow-list's websocket
routes (OpenAPI lists none). Starlette's ``{name}`` matches one path segment, ``{name:path}`` the
rest. When a path fits several templates (a literal segment where another route has a parameter),
the gateway must allow the request only if *every* candidate allows it: then whichever one Prefect
dispatches to, the decision held for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def compile_template(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for match in PARAMETER.finditer(template):
        pattern += re.escape(template[last : match.start()]) + (".*" if match.group(2) else "[^/]+")
        last = match.end()
    return re.compile(pattern + re.escape(template[last:]))


class RouteIndex:
    """(method, template) pairs, and the templates a concrete request path fits."""

    def __init__(self, routes: Iterable[tuple[str, str]]) -> None:
        self.routes = sorted(set(routes))
        self._compiled = [(method, template, compile_template(template)) for method, template in self.routes]

    @classmethod
    def from_openapi(cls, document: dict[str, object], websockets: Iterable[str] = ()) -> RouteIndex:
        paths = document.get("paths")
        assert isinstance(paths, dict), "an OpenAPI document has paths"
        http = [(m.upper(), path) for path, ops in paths.items() for m in ops if m.upper() in HTTP_METHODS]
        return cls([*http, *(("WS", path) for path in websockets)])

    def matching(self, method: str, path: str) -> list[str]:
        """Every template of this method that the path fits; HEAD is served by the GET route."""
        method = "GET" if method == "HEAD" else method
        return [template for m, template, regex in self._compiled if m == method and regex.fullmatch(path)]
