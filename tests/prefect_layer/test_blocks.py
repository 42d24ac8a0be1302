"""Connector blocks: Prefect's own block standard suite, plus persistence and secret masking."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from blocks import AhvConnector, AzureConnector, FileShareConnector, LocalConnector, VsphereConnector
from blocks.registry import delete_connector, find_connector, list_connectors, public_fields, save_connector
from imageport.errors import ConnectorExists, ConnectorNotFound, InputError
from imageport.storage.smb import SmbShare


@pytest.mark.parametrize(
    "block_cls", [FileShareConnector, VsphereConnector, AhvConnector, AzureConnector, LocalConnector]
)
class TestConnectorBlocksMeetPrefectsStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block_cls: type[Block]) -> type[Block]:
        return block_cls

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # Upstream downloads the logo from the internet (and skips without Pillow).
        # Our decision: no logo URL at all, so the UI never fetches anything from outside.
        assert block._logo_url is None


def test_secret_fields_are_declared_to_prefect() -> None:
    assert FileShareConnector._to_block_schema().fields["secret_fields"] == ["password"]
    assert VsphereConnector._to_block_schema().fields["secret_fields"] == ["password"]
    assert AhvConnector._to_block_schema().fields["secret_fields"] == ["password"]
    assert AzureConnector._to_block_schema().fields["secret_fields"] == ["client_secret", "ce_storage_account_key"]


def test_azure_auth_choices_are_exclusive() -> None:
    with pytest.raises(InputError, match="needs tenant_id, client_id, client_secret"):
        save_connector("azure", "az-bad", {"subscription_id": "s", "resource_group": "rg"})
    with pytest.raises(InputError, match="takes no client_secret"):
        save_connector(
            "azure",
            "az-bad",
            {"auth": "managed-identity", "client_secret": "x", "subscription_id": "s", "resource_group": "rg"},
        )


def test_connectors_persist_load_from_the_server_and_build_their_adapter(prefect_api: str) -> None:
    fields = {"server": "fs01", "share": "images", "username": "svc", "password": "S3cret!"}
    save_connector("fileshare", "persist-share", fields)
    kind, loaded = find_connector("persist-share")
    assert kind == "fileshare" and isinstance(loaded.build(), SmbShare)
    assert loaded.password.get_secret_value() == "S3cret!"
    assert public_fields(loaded)["password"] == "********"
    assert ("fileshare", "persist-share") in list_connectors()

    with pytest.raises(ConnectorExists, match="--overwrite"):
        save_connector("fileshare", "persist-share", fields)
    with pytest.raises(ConnectorExists, match="a fileshare connector"):
        save_connector("local", "persist-share", {"root": "/tmp/x"})

    assert delete_connector("persist-share") == "fileshare"
    with pytest.raises(ConnectorNotFound):
        find_connector("persist-share")
