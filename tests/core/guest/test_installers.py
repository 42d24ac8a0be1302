"""Installers a prepare stages: the PE's version and signer, the choice per component, install vs force,
the PVS version check, and the agent's check of what it received. No appliance: pure code and files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pefile
import pytest

from imageport.disks.local_files import LOCAL
from imageport.engine.installer_fetch import fetch_installers
from imageport.engine.job import AgentDisk, JobInstaller
from imageport.errors import EngineError, InputError
from imageport.guest import firstboot
from imageport.guest.installers import InstallerFolder, inspect_folder, local_staging, version_matches
from imageport.guest.pe import pe_info
from imageport.models import PrepareOptions
from imageport.models.installers import Component, StagedInstaller
from tests.infra.signed_pe import build_pe

SIGNER = "Citrix Systems, Inc."


def info(path: Path):  # type: ignore[no-untyped-def]
    source = LOCAL.open(str(path))
    try:
        return pe_info(source, source.size, path.name)
    finally:
        source.close()


def local_folder(folder: Path) -> InstallerFolder:
    return InstallerFolder(LOCAL, str(folder), LOCAL.output_store().listdir(str(folder)))


def test_the_version_resource_and_the_signer_are_read_as_an_independent_pe_reader_reads_them(tmp_path: Path) -> None:
    signed = build_pe(tmp_path / "PVS_Device_x64.exe", version="2402.0.0.1129", product="PVS", signer=SIGNER)
    got = info(signed)
    fixed = pefile.PE(str(signed)).VS_FIXEDFILEINFO[0]  # pefile: not the code under test
    ms, ls = fixed.ProductVersionMS, fixed.ProductVersionLS
    assert got.version == f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}" == "2402.0.0.1129"
    assert got.signer == "CN=Citrix Systems\\, Inc.,O=Test Systems"  # the leaf, not the CA carried beside it
    unsigned = build_pe(tmp_path / "misa.exe", version="1.2.3.4", product="MISA", signer=None)
    assert info(unsigned).version == "1.2.3.4" and info(unsigned).signer is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"ZM" + b[2:], "not a Windows executable (no MZ header)"),
        (lambda b: b[:0x80], "lies outside the file"),
        (lambda b: b[:0x40] + b"XX" + b[0x42:], "not a PE file (no PE signature at 64)"),
        (lambda b: b[:-40], "lies outside the file"),  # the certificate table cut short
    ],
)
def test_a_damaged_installer_is_refused_in_one_line_naming_it(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    good = build_pe(tmp_path / "good.exe", version="1.0", product="x", signer=SIGNER).read_bytes()
    bad = tmp_path / "pvs_bad.exe"
    bad.write_bytes(damage(good))
    with pytest.raises(InputError) as caught:
        info(bad)
    assert message in str(caught.value) and "pvs_bad.exe" in str(caught.value) and "\n" not in str(caught.value)


def options(**fields: object) -> PrepareOptions:
    return PrepareOptions.model_validate({"installers": {"kind": "local", "path": "citrix"}, **fields})


def test_each_component_takes_its_installer_checked_and_the_pvs_version_must_match(tmp_path: Path) -> None:
    folder = tmp_path / "citrix"
    folder.mkdir()
    build_pe(folder / "PVS_Device_x64_2402.exe", version="2402.0.0.1129", product="PVS", signer=SIGNER)
    build_pe(folder / "PVS_Device_x64_2311.exe", version="2311.0.0.1000", product="PVS", signer=SIGNER)
    (folder / "mcsio_x64.msi").write_bytes(b"an msi: hashed, not parsed")
    (folder / "readme.txt").write_text("not an installer")
    asked = options(provisioning_type="pvs", pvs_install_version="2402.0", mcsio="force")
    found = inspect_folder(local_folder(folder), asked, "citrix")
    pvs, mcsio = (f.staged for f in found)
    assert (pvs.component, pvs.name, pvs.version) == (Component.PVS, "PVS_Device_x64_2402.exe", "2402.0.0.1129")
    assert pvs.sha256 == hashlib.sha256((folder / pvs.name).read_bytes()).hexdigest()
    assert pvs.signer == "CN=Citrix Systems\\, Inc.,O=Test Systems"
    assert (mcsio.name, mcsio.version, mcsio.signer, mcsio.install.value) == ("mcsio_x64.msi", None, None, "force")
    # A mismatch is refused before anything changes: the last PVS installer by name is 2402, not 2311.
    with pytest.raises(InputError, match=r"citrix/PVS_Device_x64_2402.exe: is version 2402.0.0.1129, but "
                                         r"pvs_install_version asks for 2311"):  # fmt: skip
        inspect_folder(local_folder(folder), options(provisioning_type="pvs", pvs_install_version="2311"), "citrix")
    with pytest.raises(InputError, match=r"MCS security agent requested but citrix has no .exe or .msi starting "
                                         r"with 'misa' \(found: .*readme.txt\)"):  # fmt: skip
        inspect_folder(local_folder(folder), options(misa="install"), "citrix")
    assert version_matches("2402", "2402.0.0.1") and not version_matches("2402.1", "2402.0.0.1")
    assert not version_matches("2402.0.0.1.5", "2402.0.0.1")


def test_install_stages_only_what_is_missing_and_force_reinstalls(tmp_path: Path) -> None:
    folder = tmp_path / "citrix"
    folder.mkdir()
    build_pe(folder / "MISA.exe", version="1.0", product="MISA", signer=SIGNER)
    (folder / "mcsio.msi").write_bytes(b"msi")
    staging = local_staging(str(folder), options(misa="install", mcsio="force"))
    installed = {"misa": "1.0.0.0", "mcsio": "2203.1"}
    actions, notes = firstboot.actions(options(misa="install", mcsio="force"), staging.installers, installed)
    assert [a.name for a in actions] == ["20-reinstall-mcsio.cmd"]  # MISA is there; install adds only what is not
    assert "REINSTALL=ALL REINSTALLMODE=vomus" in actions[0].script
    assert notes == ["MCS security agent is already installed (version 1.0.0.0): MISA.exe not staged "
                     "(install only adds what is missing; force reinstalls)"]  # fmt: skip
    fresh, none = firstboot.actions(options(misa="install", mcsio="force"), staging.installers, {})
    assert [a.name for a in fresh] == ["20-reinstall-mcsio.cmd", "21-install-misa.cmd"] and none == []
    assert fresh[1].script.endswith('MISA.exe" /quiet /norestart') and fresh[1].installer == staging.installers[1]


def test_the_agent_stages_only_the_bytes_that_were_checked(tmp_path: Path) -> None:
    installer = tmp_path / "misa.exe"
    installer.write_bytes(b"checked bytes")
    staged = StagedInstaller(component=Component.MISA, install="install", name="misa.exe", size=13,
                             sha256=hashlib.sha256(b"checked bytes").hexdigest())  # fmt: skip
    disk = AgentDisk(lun=0, device_root=str(tmp_path / "luns"))
    got = fetch_installers([JobInstaller(installer=staged, fetch=str(installer))], tmp_path / "work", disk)
    assert got.files == {"misa.exe": str(installer)} and got.installers == [staged]
    # A vSphere CE's installer disk: the bytes from offset 0, padded to a sector, at the job's device root.
    (tmp_path / "luns").mkdir()
    (tmp_path / "luns/lun3").write_bytes(b"checked bytes".ljust(512, b"\0"))
    on_disk = fetch_installers([JobInstaller(installer=staged, fetch="lun:3")], tmp_path / "work", disk)
    assert Path(on_disk.files["misa.exe"]).read_bytes() == b"checked bytes"
    (tmp_path / "luns/lun3").write_bytes(b"checked byte".ljust(512, b"\0"))
    with pytest.raises(EngineError, match=r"misa.exe: the CE received 13 bytes sha256 .*, not the 13 bytes"):
        fetch_installers([JobInstaller(installer=staged, fetch="lun:3")], tmp_path / "work", disk)
    with pytest.raises(EngineError, match=r"misa.exe: the CE could not read its disk .*lun4"):
        fetch_installers([JobInstaller(installer=staged, fetch="lun:4")], tmp_path / "work", disk)
    installer.write_bytes(b"swapped bytes")
    with pytest.raises(EngineError, match=r"misa.exe: the CE received 13 bytes sha256 .*, not the 13 bytes"):
        fetch_installers([JobInstaller(installer=staged, fetch=str(installer))], tmp_path / "work", disk)
    with pytest.raises(EngineError, match=r"misa.exe: the CE could not fetch it \(.*refused") as caught:
        fetch_installers([JobInstaller(installer=staged, fetch="http://127.0.0.1:9/x?sig=SECRET")], tmp_path / "w",
                         disk)  # fmt: skip
    assert "SECRET" not in str(caught.value)


def test_the_cli_refuses_a_pvs_version_mismatch_before_touching_the_image(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "citrix").mkdir()
    build_pe(tmp_path / "citrix" / "PVS_Device.exe", version="2402.0.0.1", product="PVS", signer=SIGNER)
    image = tmp_path / "gold.raw"
    image.write_bytes(b"\0" * (1 << 20))
    done = run_cli("prepare", str(image), "--target", "azure", "--provisioning", "pvs", "--pvs-version", "2311",
                   "--installers", str(tmp_path / "citrix"), "--output", str(tmp_path / "out.raw"))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: {tmp_path}/citrix/PVS_Device.exe: is version 2402.0.0.1, but "
                                   "pvs_install_version asks for 2311; stage the matching installer or change "
                                   "pvs_install_version")  # fmt: skip
    assert not (tmp_path / "out.raw").exists()  # refused before the copy
