"""The agent bundle: one file that runs under every stock interpreter, in a clean machine with no index reachable.

Each run goes through tests/infra/ce_sandbox.py (no network but loopback, an
environment cleared as a VM's, ``python3`` the chosen pyenv build): exactly
how a CE runs it, minus the VM. These interpreters have no guestfs (Debian's
binding is for its 3.11), so the jobs here are exports and refusals; guest
jobs run through the bundle under the system python3 in test_azure_engine.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imageport.engine.bundle import agent_bundle, prune, verify_bundle
from imageport.engine.job import PROTOCOL_VERSION, ExitCode
from imageport.errors import BundleError
from tests.core.disks.images import MiB, make_raw, qemu_compare
from tests.infra.ce_sandbox import Sandbox

PYENV = Path.home() / ".pyenv" / "versions"


@pytest.fixture(scope="module")
def bundle():  # type: ignore[no-untyped-def]
    return agent_bundle()


@pytest.fixture(scope="module")
def sandbox():  # type: ignore[no-untyped-def]
    box = Sandbox()
    yield box
    box.close()


def run_bundle(sandbox: Sandbox, bundle_path: Path, job: dict, version: str, tmp_path: Path) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """``python3 BUNDLE JOB.json`` with pyenv's ``version`` as the machine's python3; (exit, result, stderr)."""
    vm_bin = tmp_path / f"bin-{version}"
    vm_bin.mkdir()
    (vm_bin / "python3").symlink_to(PYENV / version / "bin" / "python3")
    job_file = tmp_path / f"job-{version}.json"
    job_file.write_text(json.dumps(job))
    script = f'PEX_ROOT="$PWD/pex" python3 {bundle_path} {job_file}'
    process = sandbox.popen(script, vm_bin, {}, tmp_path)
    _, err = process.communicate(timeout=300)
    result = json.loads(job_file.with_suffix(".result.json").read_text())
    return process.returncode, result, err.decode()


@pytest.mark.parametrize("version", ["3.9.18", "3.10.13", "3.12.1", "3.13.0"])
def test_the_bundle_exports_under_every_stock_interpreter(bundle, sandbox, version: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = make_raw(tmp_path / "src.raw", 8 * MiB, runs=3, seed=5, max_run=MiB)
    job = {"protocol": PROTOCOL_VERSION, "mode": "export", "run_id": "r-b", "disk": {"path": str(source)},
           "export": {"path": str(tmp_path / "out.vhdx"), "disk_format": "vhdx"}}  # fmt: skip
    code, result, err = run_bundle(sandbox, bundle.path, job, version, tmp_path)
    assert code == 0 and result["ok"], err
    assert result["agent_version"] == bundle.version and result["protocol"] == PROTOCOL_VERSION
    assert f"Python {version}" in result["log"]
    assert qemu_compare(source, "raw", tmp_path / "out.vhdx", "vhdx").returncode == 0


def test_an_agent_refuses_a_job_of_another_protocol_in_one_line(bundle, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = {"protocol": PROTOCOL_VERSION + 1, "mode": "export", "run_id": "r-p", "disk": {"path": "/nonexistent"},
           "a_field_of_the_future": True}  # fmt: skip
    code, result, _ = run_bundle(sandbox, bundle.path, job, "3.10.13", tmp_path)
    assert code == ExitCode.PROTOCOL and result["error_kind"] == "ProtocolMismatch"
    assert "\n" not in result["error"]
    assert (f"the job speaks protocol {PROTOCOL_VERSION + 1}, this agent speaks protocol {PROTOCOL_VERSION}"
            in result["error"])  # fmt: skip


def test_a_changed_bundle_is_refused_naming_the_file(bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "agent.pex"
    shutil.copyfile(bundle.path, copy)
    verify_bundle(copy, bundle.sha256)
    with open(copy, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(BundleError, match=f"agent bundle {copy}: sha256 is [0-9a-f]{{64}}, expected {bundle.sha256}"):
        verify_bundle(copy, bundle.sha256)


def test_the_cli_builds_the_bundle_into_a_directory(bundle, imageport_bin: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run([imageport_bin, "engine", "bundle", "--out", str(tmp_path / "dist"), "--json"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert built["sha256"] == bundle.sha256 and built["version"] == bundle.version
    assert Path(built["path"]).parent == tmp_path / "dist"
    verify_bundle(Path(built["path"]), bundle.sha256)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    refused = subprocess.run([imageport_bin, "engine", "bundle", "--out", str(not_a_dir)], capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert refused.returncode == 2 and f"{not_a_dir}: not a directory" in refused.stderr


@pytest.mark.parametrize("version", ["3.9.18", "3.13.0"])
def test_every_agent_module_imports_from_the_bundle_under_the_oldest_and_newest_python(  # type: ignore[no-untyped-def]
    bundle, sandbox, version: str, tmp_path: Path
) -> None:
    """The guest modules too (prepare, diagnostics): they import guestfs only when they launch an appliance."""
    vm_bin = tmp_path / "bin"
    vm_bin.mkdir()
    (vm_bin / "python3").symlink_to(PYENV / version / "bin" / "python3")
    modules = ("imageport.engine.agent", "imageport.guest.prepare", "imageport.guest.diagnostics",
               "imageport.transfer.copy", "imageport.storage.smb_files", "imageport.disks.detect")  # fmt: skip
    code = f"import importlib; [importlib.import_module(m) for m in {modules!r}]; print('imported')"
    process = sandbox.popen(f'PEX_ROOT="$PWD/pex" PEX_INTERPRETER=1 python3 {bundle.path} -c "{code}"', vm_bin, {},
                            tmp_path)  # fmt: skip
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and out.decode().strip() == "imported", err.decode()[-2000:]


def test_a_new_build_prunes_old_bundles_and_unused_dependencies(tmp_path: Path) -> None:
    bundles = [tmp_path / f"imageport-agent-0.1.0+{i:016x}.pex" for i in range(6)]
    for age, path in enumerate(reversed(bundles)):  # bundles[5] is the newest
        path.write_bytes(b"pex")
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    deps, old_deps = tmp_path / "deps-new.pex", tmp_path / "deps-old.pex"
    partial = tmp_path / ".deps-killed.partial"
    for path in (deps, old_deps, partial):
        path.write_bytes(b"pex")
    removed = prune(tmp_path, keep={bundles[5], deps})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (*bundles[3:], deps))
    assert set(removed) == {*bundles[:3], old_deps, partial}
