"""VsphereSession against the suite's govmomi vCenter simulator."""

from __future__ import annotations

import pytest

from imageport.errors import PlatformAccessDenied, PlatformError, PlatformNotFound, PlatformUnreachable
from imageport.platforms.vsphere.session import VsphereConfig
from tests.infra.configs import vcsim_vsphere
from tests.infra.services import free_port

pytestmark = pytest.mark.integration


config = vcsim_vsphere


def test_check_logs_in_and_finds_datacenter_and_datastore(vcsim) -> None:  # type: ignore[no-untyped-def]
    facts = config(vcsim, datastore="LocalDS_0").build().check()
    assert any("VMware vCenter Server" in f for f in facts)
    assert "datacenter DC0 found" in facts and "datastore LocalDS_0 found" in facts


def test_wrong_password_is_access_denied(vcsim) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlatformAccessDenied) as info:
        config(vcsim, password="nope").build().check()
    assert "refused the user name or password" in str(info.value)


def test_tls_is_verified_by_default(vcsim) -> None:  # type: ignore[no-untyped-def]
    # The simulator's self-signed test certificate must be refused unless the user opts out.
    with pytest.raises(PlatformError) as info:
        config(vcsim, verify_tls=True).build().check()
    assert "verify_tls=false" in str(info.value)


def test_unknown_datastore_is_not_found(vcsim) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlatformNotFound) as info:
        config(vcsim, datastore="NoSuchDS").build().check()
    assert "NoSuchDS" in str(info.value)


def test_unreachable_vcenter_is_transient() -> None:
    cfg = VsphereConfig(host="127.0.0.1", port=free_port(), username="u", password="p", verify_tls=False)
    with pytest.raises(PlatformUnreachable) as info:
        cfg.build().check()
    assert info.value.transient


def test_thumbprint_and_no_verification_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        VsphereConfig(host="h", username="u", password="p", verify_tls=False, thumbprint=":".join(["AA"] * 20))
