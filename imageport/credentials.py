"""Where credentials may live in a connector's configuration: only in its secret fields.

- ``SecretsRegistered``: a config model that registers each of its ``SecretStr``
  values as a known secret (``redaction.register_secret``) when it is
  validated — built in code, loaded as a Prefect block or read from the CLI —
  so the value is redacted from every output from then on.
- ``HostName`` and ``EndpointUrl``: a host or URL field refuses embedded
  credentials (``user:password@host``, ``https://user:pw@...``); the refusal
  never repeats the value. Put the user in ``username`` and the secret in its
  secret field.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, SecretStr, model_validator

from imageport.redaction import register_secret

CREDENTIALS_HINT = "credentials do not belong here; set username and the secret field instead"


def _host_without_credentials(value: str) -> str:
    if "@" in value:
        raise ValueError(f"a host name cannot hold '@' ({CREDENTIALS_HINT})")
    return value


def _url_without_credentials(value: str) -> str:
    if "@" in value.split("?", 1)[0].split("#", 1)[0]:
        try:
            parts = urlsplit(value if "://" in value else f"//{value}")
            has_userinfo = "@" in parts.netloc
        except ValueError:
            has_userinfo = True
        if has_userinfo:
            raise ValueError(f"a URL with user:password@ is refused ({CREDENTIALS_HINT})")
    return value


HostName = Annotated[str, AfterValidator(_host_without_credentials)]
EndpointUrl = Annotated[str, AfterValidator(_url_without_credentials)]


class SecretsRegistered(BaseModel):
    """Registers every ``SecretStr`` field's value as a known secret once the model is valid."""

    @model_validator(mode="after")
    def _register_secrets(self) -> Any:
        for name in type(self).model_fields:
            value = getattr(self, name, None)
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())
        return self
