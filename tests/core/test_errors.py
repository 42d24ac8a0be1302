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


def _error_classes_outside_errors_py() -> list[str]:
    """Classes deriving from an exception, defined anywhere in the product but ``imageport/errors.py``."""
    import ast
    import builtins

    from imageport import errors
    from tests.infra.services import REPO

    exception_names = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, BaseException)}
    exception_names |= {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
    found = []
    for tree in ("imageport", "tasks", "flows", "blocks", "cli"):
        for path in sorted((REPO / tree).rglob("*.py")):
            if path == REPO / "imageport" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases = {
                        b.id if isinstance(b, ast.Name) else b.attr
                        for b in node.bases
                        if isinstance(b, ast.Name | ast.Attribute)
                    }
                    if bases & exception_names or any(b.endswith(("Error", "Exception")) for b in bases):
                        found.append(f"{path.relative_to(REPO)}: {node.name}")
    return found


def test_every_error_class_lives_in_errors_py() -> None:
    # specfile's _Refused is PyYAML's own error type (a MarkedYAMLError, caught inside specfile.load and
    # re-raised as InputError): it never leaves the module, and moving it would make errors.py import yaml.
    assert _error_classes_outside_errors_py() == ["imageport/specfile.py: _Refused"]


def test_the_docstring_tree_names_every_error_class() -> None:
    from imageport import errors

    classes = [n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.ImageportError)]
    assert len(classes) > 30 and [n for n in classes if n not in (errors.__doc__ or "")] == []


def test_a_given_up_error_says_so_once() -> None:
    err = StorageError("dropped")
    err.gave_up(4, 20.4)
    err.gave_up(4, 20.4)
    assert str(err) == "dropped (gave up after 4 attempts over 20 s)" and err.attempts == 4 and err.core_gave_up
