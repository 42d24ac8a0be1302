"""Every option does something: each field of every options model, spec and connector config is read
somewhere outside its own definition (issue 16, part 1).

Static: an AST scan of the product's source for an attribute read of the field's name (``spec.chkdsk``) or
its name as a ``getattr`` / subscript key. The module that defines the model, the UI form titles
(``imageport/forms.py``), the docs and the tests do not count: a field only validated, titled or described
and then ignored fails here. The scan goes by name, so it cannot tell two models' same-named fields apart;
``test_a_planted_unread_field_fails`` shows it fails for real on a field nobody reads.

A connector config's field counts only when read off a connector config: ``X.config.FIELD``,
``config.FIELD``, ``cfg.FIELD``, ``block.FIELD`` (a receiver named for it). By bare name, the share connector's
``disk_format`` passed for read while only ``ExportOptions.disk_format`` was -- the connector's was ignored (issue 16);
``test_a_connector_field_read_only_off_an_options_model_fails`` keeps that class of bug caught.
"""

from __future__ import annotations

import ast
import inspect
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from imageport.models import options, specs
from imageport.platforms.ahv.session import AhvConfig
from imageport.platforms.azure.session import AzureConfig
from imageport.platforms.vsphere.session import VsphereConfig
from imageport.platforms.xenserver.session import XenServerConfig
from imageport.storage.blob_folder import BlobContainerConfig
from imageport.storage.local import LocalDirectoryConfig
from imageport.storage.smb import SmbShareConfig

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("imageport", "tasks", "flows", "blocks", "cli", "deployments")
NOT_READERS = {ROOT / "imageport" / "forms.py"}  # titles for the UI's forms: naming a field is not using it

# Fields whose work belongs to a colleague's branch of issue 16, unread on this one. The lead removes this set
# at merge; nothing else may be exempt.
PENDING_OWNERS: set[str] = set()  # fields another change is wiring up, named while it lands (none now)


CONNECTOR_CONFIGS: list[type[BaseModel]] = [SmbShareConfig, VsphereConfig, AzureConfig, LocalDirectoryConfig,
                                             AhvConfig, XenServerConfig, BlobContainerConfig]  # fmt: skip
# What a connector config is called where its fields are read (a saved block is one: it inherits the config).
CONFIG_RECEIVERS = ("config", "cfg", "block")


def models() -> list[type[BaseModel]]:
    """Every options model and spec (models/options.py, models/specs.py)."""
    return [
        obj
        for module in (options, specs)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def _receiver(node: ast.AST) -> str:
    """The name an attribute is read off: ``config`` in ``self.session.config.x``, ``cfg`` in ``cfg.x``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return getattr(node, "id", "")


def own_fields(model: type[BaseModel]) -> list[str]:
    """The fields ``model`` itself declares (an inherited one is checked on the class that declares it)."""
    return [name for name in model.__annotations__ if name in model.model_fields]


@cache
def reads(off_config: bool = False) -> tuple[tuple[Path, int, str], ...]:
    """(file, line, name) for every name the product reads: an attribute, a ``getattr`` name, a subscript key.
    ``off_config``: only attributes read off a connector config (``CONFIG_RECEIVERS``)."""
    found = []
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path in NOT_READERS:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                name = None
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                    if not off_config or any(r in _receiver(node.value).lower() for r in CONFIG_RECEIVERS):
                        name = node.attr
                elif off_config:
                    continue
                elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr"):
                    if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                        name = str(node.args[1].value)
                elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    name = str(node.slice.value)
                if name is not None:
                    found.append((path.resolve(), node.lineno, name))
    return tuple(found)


def unread(candidates: list[type[BaseModel]], off_config: bool = False) -> list[str]:
    """``Model.field`` for each field of ``candidates`` that nothing reads outside the model's own class body
    (its validators may check a field; that alone is "validated then ignored"); ``off_config``: read off a
    connector config."""
    missing = []
    for model in candidates:
        file = Path(inspect.getfile(model)).resolve()
        lines, first = inspect.getsourcelines(model)
        body = range(first, first + len(lines))
        read = {name for path, line, name in reads(off_config) if not (path == file and line in body)}
        missing += [f"{model.__name__}.{name}" for name in own_fields(model) if name not in read]
    return missing


def test_every_option_field_is_read_by_the_product() -> None:
    missing = set(unread(models())) | set(unread(CONNECTOR_CONFIGS, off_config=True))
    ignored = sorted(missing - PENDING_OWNERS)
    assert not ignored, f"accepted, never read (make it work or refuse it): {ignored}"
    stale = PENDING_OWNERS - missing
    assert not stale, f"read now: remove from PENDING_OWNERS: {sorted(stale)}"


class Planted(BaseModel):
    """A model defined here, in a test: nothing in the product reads its odd field."""

    chkdsk: bool = Field(default=False)
    planted_field_nobody_reads: bool = Field(default=False)


def test_a_planted_unread_field_fails() -> None:
    assert unread([Planted]) == ["Planted.planted_field_nobody_reads"]  # chkdsk is read (guest/firstboot.py)


class PlantedShareConfig(BaseModel):
    """A connector config defined here: ``hash_disk`` is a name the product reads -- off options and specs only,
    as the share connector's ``disk_format`` was before the export honoured it."""

    server: str = Field(default="files")
    hash_disk: bool = Field(default=True)


def test_a_connector_field_read_only_off_an_options_model_fails() -> None:
    assert unread([PlantedShareConfig]) == []  # by bare name both look read: the bug this test keeps out
    assert unread([PlantedShareConfig], off_config=True) == ["PlantedShareConfig.hash_disk"]  # config.server


def test_every_connector_kind_has_its_config_checked() -> None:
    from blocks.connectors import CONNECTOR_KINDS

    for kind, block in CONNECTOR_KINDS.items():
        assert any(issubclass(block, config) for config in CONNECTOR_CONFIGS), f"{kind}: add its config here"


def test_retired_options_are_refused_naming_what_to_do() -> None:
    import pytest

    with pytest.raises(ValueError, match="ce_network is not supported: a vSphere compositing engine gets no network"):
        VsphereConfig(host="vc.example", username="u", password="secret-pw", ce_network="VM Network")
    assert "ce_network" not in VsphereConfig.model_fields
