"""Deciding a request: the allow-list's rules and the checks some of them make on the query or body.

A rule names one of Prefect's routes as its router declares it (method + path template relative to
``/api``, e.g. ``GET /block_documents/{id}``), the roles that may call it, and optionally a condition
on the request. An administrator may call anything; for the other roles a route with no rule is
denied, so a route a new Prefect version adds stays closed to porters and workers until someone
lists it (tests/prefect_layer/test_access_roles.py walks the server's own OpenAPI document).
A rule's condition restricts porters only: workers run the flows, which set every state and load
connectors with their secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from imageport.access.roles import Role

# pydantic's lax bool parsing turns these (any case) into False; anything else might be True.
FALSE_WORDS = {"false", "0", "no", "off", "f", "n"}


@dataclass(frozen=True)
class Request:
    """What the policy may look at: the route's template, the raw query and (if asked for) the body."""

    method: str
    template: str
    query: str = ""
    body: bytes | None = None


@dataclass(frozen=True)
class Condition:
    """A check on a request a rule's role may otherwise make; ``why`` says what it refuses."""

    why: str
    check: Callable[[Request], bool]
    needs_body: bool


@dataclass(frozen=True)
class Rule:
    method: str
    template: str
    roles: frozenset[Role]
    condition: Condition | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def json_body(body: bytes | None) -> object:
    """The body as JSON, duplicate keys refused: Prefect must not read a different value than we checked."""

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    if not body:
        return None
    return json.loads(body, object_pairs_hook=unique)


def _no_secrets(request: Request) -> bool:
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        if key == "include_secrets" and value.strip().lower() not in FALSE_WORDS:
            return False
    if request.body is None or request.method == "GET":
        return True
    try:
        data = json_body(request.body)
    except ValueError:
        return False  # what we cannot read, we cannot vouch for
    if not isinstance(data, dict) or "include_secrets" not in data:
        return True
    value = data["include_secrets"]
    return value is False or value is None or (isinstance(value, str | int) and str(value).lower() in FALSE_WORDS)


def state_types(*allowed: str) -> Condition:
    """A flow run's new state must be one of these types (porters cancel and re-run, never complete)."""

    def check(request: Request) -> bool:
        try:
            data = json_body(request.body)
        except ValueError:
            return False
        state = data.get("state") if isinstance(data, dict) else None
        return isinstance(state, dict) and state.get("type") in allowed

    return Condition(f"only a state of type {', '.join(allowed)}", check, needs_body=True)


NO_SECRETS = Condition("without include_secrets", _no_secrets, needs_body=True)


class Policy:
    """The allow-list, indexed by (method, template)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: dict[tuple[str, str], Rule] = {}
        for rule in rules:
            key = (rule.method, rule.template)
            if key in self.rules:
                raise ValueError(f"allow-list: {rule.method} {rule.template} listed twice")
            self.rules[key] = rule

    def needs_body(self, role: Role, method: str, template: str) -> bool:
        rule = self.rules.get((method, template))
        condition = rule.condition if rule is not None else None
        return role is Role.PORTER and condition is not None and condition.needs_body

    def allows_route(self, role: Role, method: str, template: str) -> bool:
        """Whether the role may call the route at all (some calls may still fail its condition)."""
        rule = self.rules.get((method, template))
        return role is Role.ADMINISTRATOR or (rule is not None and role in rule.roles)

    def decide(self, role: Role, request: Request) -> Verdict:
        if role is Role.ADMINISTRATOR:
            return Verdict(True)
        rule = self.rules.get((request.method, request.template))
        if rule is None:
            return Verdict(False, "not on the allow-list")
        if role not in rule.roles:
            return Verdict(False, f"not allowed to the {role.value} role")
        if role is Role.PORTER and rule.condition is not None and not rule.condition.check(request):
            return Verdict(False, f"{role.value}s may call it {rule.condition.why}")
        return Verdict(True)
