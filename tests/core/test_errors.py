from imageport.errors import (
    FormatError,
    ImageportError,
    PlatformUnreachable,
    StorageAccessDenied,
    StorageError,
)


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
