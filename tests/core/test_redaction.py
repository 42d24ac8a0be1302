"""The one redaction (imageport/redaction.py) and where credentials may live (imageport/credentials.py)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError

from imageport import redaction
from imageport.errors import InputError
from imageport.platforms.azure.session import AzureConfig
from imageport.platforms.vsphere.session import VsphereConfig
from imageport.storage.smb import SmbShareConfig
from tests.infra.secrets import LogRecorder, assert_no_secret_in, find_leaks

SAS = "https://acct.blob.core.windows.net/c/disk.vhd?sv=2022-11-02&sr=b&sp=rw&se=2030-01-01&sig=Ab%2Bcd%2Fef%3D"


def test_every_pattern_is_removed() -> None:
    text = (
        f"GET {SAS} failed; DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0a2V5;"
        "BlobEndpoint=x;SharedAccessSignature=sv=1&sig=zzzSIGzzz; https://admin:hunter2@vc.corp/sdk "
        "Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.sIgNaTuRe {'sig': 'decoded+sig='} sig%3DencodedSig"
    )
    out = redaction.redact(text)
    gone = ("Ab%2Bcd%2Fef%3D", "c2VjcmV0a2V5", "zzzSIGzzz", "hunter2", "eyJhbGciOi", "decoded+sig=", "encodedSig")
    assert [secret for secret in gone if secret in out] == []
    assert "https://acct.blob.core.windows.net/c/disk.vhd?REDACTED-SAS failed" in out  # the whole query goes
    assert "se=2030" not in out and "https://admin:REDACTED@vc.corp/sdk" in out
    assert redaction.redact(out) == out  # idempotent: the filter may run twice on a record


def test_known_secrets_are_removed_in_every_form_and_short_ones_are_not_registered() -> None:
    redaction.register_secret("Pl@nted pass/wörd")
    redaction.register_secret("pass")  # too short to redact without shredding ordinary words
    text = "a Pl@nted pass/wörd b Pl%40nted%20pass%2Fw%C3%B6rd c Pl%40nted+pass%2Fw%C3%B6rd d 'Pl@nted pass/w\\xf6rd'"
    out = redaction.redact(text)
    assert_no_secret_in(["Pl@nted pass/wörd"], out)
    assert "password" in redaction.redact("password")


def test_sas_signatures_are_known_secrets_once_opened() -> None:
    redaction.register_sas("http://127.0.0.1:1/acct/c/b?sv=1&sig=Raw%2BSignature%3D%3D")
    out = redaction.redact("decoded Raw+Signature== raw Raw%2BSignature%3D%3D")
    assert "Raw+Signature" not in out and "Raw%2BSignature" not in out


def test_a_log_record_is_redacted_for_every_handler_also_one_added_later() -> None:
    redaction.install_log_redaction()
    redaction.register_secret("Planted-Log-Secret-1")
    logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    with LogRecorder() as recorder:  # added after the install: the record factory covers it
        logger.warning("Request URL: %s password=%s", SAS, "Planted-Log-Secret-1")
        try:
            raise RuntimeError(f"failed at {SAS} with Planted-Log-Secret-1")
        except RuntimeError:
            logging.getLogger("smbprotocol").exception("boom")
        record = logging.makeLogRecord({"msg": f"built by hand: {SAS}", "levelno": logging.INFO})
        redaction.FILTER.filter(record)  # records made without the factory pass the handler filter
        recorder.handle(record)
    assert len(recorder.lines) == 3 and "Traceback" in recorder.lines[1]
    assert_no_secret_in(["Planted-Log-Secret-1", "Ab+cd/ef="], *recorder.lines, where="log")


def test_the_stream_redacts_a_secret_written_in_pieces() -> None:
    out = io.StringIO()
    stream = redaction.RedactingStream(out)
    for piece in ("title https://acct/c/b?sv=1&si", "g=SPLITSIG", "123 end\n", "tail sig=NOEOL"):
        stream.write(piece)
    stream.flush()
    assert "SPLITSIG" not in out.getvalue() and "NOEOL" not in out.getvalue()
    assert out.getvalue().startswith("title https://acct/c/b?REDACTED-SAS end\n")


def test_an_uncaught_exception_prints_a_redacted_traceback() -> None:
    code = (
        "from imageport import redaction; redaction.install()\n"
        "import threading\n"
        f"t = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError('thread {SAS}'))); t.start(); t.join()\n"
        f"raise ValueError('main {SAS} https://u:Planted-Pw-99@h/')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ValueError: main" in done.stderr and "ValueError: thread" in done.stderr
    assert_no_secret_in(["Ab+cd/ef=", "Planted-Pw-99"], done.stdout, done.stderr)


def test_connector_configs_register_their_secrets_when_validated() -> None:
    SmbShareConfig(server="fs01", share="s", username="u", password="Share-Secret-42")
    VsphereConfig(host="vc", username="u", password="Vc-Secret-42", verify_tls=False)
    AzureConfig(tenant_id="t", client_id="c", client_secret="Az-Secret-42", subscription_id="s", resource_group="rg")
    out = redaction.redact("Share-Secret-42 Vc-Secret-42 Az-Secret-42")
    assert find_leaks(["Share-Secret-42", "Vc-Secret-42", "Az-Secret-42"], out) == []


@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (SmbShareConfig, {"server": "svc:Embedded-Pw@fs01", "share": "s", "username": "u", "password": "p"}, "server"),
        (VsphereConfig, {"host": "admin:Embedded-Pw@vc", "username": "u", "password": "p"}, "host"),
        (
            AzureConfig,
            {"auth": "default", "subscription_id": "s", "resource_group": "rg",
             "arm_endpoint": "https://app:Embedded-Pw@management.azure.com"},
            "arm_endpoint",
        ),
        (
            AzureConfig,
            {"auth": "default", "subscription_id": "s", "resource_group": "rg",
             "authority_host": "https://app:Embedded-Pw@login.example"},
            "authority_host",
        ),
    ],
)  # fmt: skip
def test_credentials_inside_a_host_or_url_field_are_refused(model, fields, field) -> None:  # type: ignore[no-untyped-def]
    from imageport.models import parse_model

    with pytest.raises(ValidationError):
        model(**fields)
    with pytest.raises(InputError) as refused:
        parse_model(model, fields, "connector")
    assert f"{field}:" in str(refused.value) and "credentials do not belong here" in str(refused.value)
    assert "Embedded-Pw" not in str(refused.value)


def test_plain_hosts_and_urls_still_pass() -> None:
    assert SmbShareConfig(server="pvs01.corp.local", share="s", username="CORP\\svc", password="p").server
    assert AzureConfig(auth="default", subscription_id="s", resource_group="rg", authority_host="https://h:8443/x")
