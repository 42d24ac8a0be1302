from imageport.errors import (
    FormatError,
    ImageportError,
    PlatformUnreachable,
    StorageAccessDenied,
    StorageError,
    redact,
)


def test_sas_signatures_keys_and_url_passwords_are_redacted() -> None:
    text = (
        "GET https://md-impexp.blob.core.windows.net/x/abcd?sv=2022&sr=b&sig=AbC%2Fdef123== failed; "
        "AccountKey=c2VjcmV0a2V5; https://admin:hunter2@vc.corp/sdk"
    )
    out = redact(text)
    assert "AbC%2Fdef123" not in out and "c2VjcmV0a2V5" not in out and "hunter2" not in out
    assert "sig=REDACTED" in out and "sv=2022" in out


def test_errors_redact_their_own_messages() -> None:
    err = StorageError("write to https://a.blob/c?sig=SECRETSIG failed")
    assert "SECRETSIG" not in str(err)


def test_categories_tell_transient_from_final() -> None:
    assert PlatformUnreachable("x").transient
    assert not StorageAccessDenied("x").transient
    assert isinstance(StorageAccessDenied("x"), StorageError)


def test_format_errors_name_file_structure_and_offset() -> None:
    err = FormatError("/img/a.vhdx", "region table 1", 196608, "bad CRC-32C")
    assert str(err) == "/img/a.vhdx: region table 1 at offset 196608: bad CRC-32C"
    assert isinstance(err, ImageportError)
