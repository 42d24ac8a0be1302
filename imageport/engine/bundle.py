"""The agent bundle: one self-contained file that every compositing engine runs as ``python3 BUNDLE JOB.json``.

Built with pex (a maintained tool; see docs/architecture.md, "The agent
bundle"): the ``imageport`` package from this checkout plus the agent's
third-party closure -- pydantic (+ pydantic-core, compiled per Python
version), smbprotocol (+ cryptography and cffi, compiled) and
eval-type-backport (pydantic evaluating ``X | Y`` on 3.9) -- as wheels for
*every* interpreter a stock CE image may have: CPython 3.9 to 3.13 on
manylinux x86_64. At run time pex picks the wheels matching the interpreter
it finds itself under and unpacks them into ``PEX_ROOT``; nothing is fetched,
so a CE never reaches a package index. The bundle falls back to the
interpreter's own site-packages (``--inherit-path=fallback``) for what only the
distribution provides: python3-guestfs and python3-hivex.

The build reaches a package index (PyPI) once per set of requirements: the
third-party wheels go into a dependencies pex cached under ``.cache/bundle``
(named by a digest of requirements and platforms); each bundle is then built
from that pex alone (``--pex-repository``, no index). A built bundle is cached
beside it, named by its version: the imageport version plus a digest of every
source file that goes in, so an edit makes a new bundle and an unchanged tree
reuses the last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imageport.engine.job import PROTOCOL_VERSION
from imageport.errors import BundleError, InputError
from imageport.hashing import file_sha256

# What the agent imports beyond the standard library and the distribution's guestfs/hivex.
REQUIREMENTS = ("pydantic>=2.7,<3", "smbprotocol>=1.13", "eval-type-backport>=0.2")
PYTHONS = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13))
# Wheels for glibc 2.17 to 2.28: any CE distribution of the last years (Ubuntu 20.04+, Debian 10+, RHEL 8+).
GLIBC_MINORS = range(28, 16, -1)
LEGACY_MANYLINUX = {17: "manylinux2014"}
ENTRY = "imageport.engine.agent"
# The bundle's own record of what it is, written into the staged package (read by the agent).
VERSION_MODULE = "_bundled.py"
CACHE_ENV = "IMAGEPORT_BUNDLE_CACHE"
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class AgentBundle:
    path: Path  # the built artifact (a pex zipapp)
    sha256: str  # hex digest of the file
    version: str  # imageport version + source digest, recorded in the job
    protocol: int  # job/result protocol version the bundled agent speaks


def _package_root() -> Path:
    import imageport

    return Path(imageport.__file__).resolve().parent


def _sources(package: Path) -> list[Path]:
    return sorted(
        p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    )


def source_version() -> str:
    """``VERSION+DIGEST``: the imageport version and a digest of what the bundle would hold."""
    from importlib.metadata import PackageNotFoundError, version

    package = _package_root()
    digest = hashlib.sha256()
    for path in _sources(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(repr((REQUIREMENTS, PYTHONS, list(GLIBC_MINORS), PROTOCOL_VERSION)).encode())
    try:
        base = version("imageport")
    except PackageNotFoundError:
        base = "0"
    return f"{base}+{digest.hexdigest()[:16]}"


KEEP_BUNDLES = 3  # agent bundles kept in the cache, newest first


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    root = _package_root().parent
    if (root / "pyproject.toml").exists():  # a checkout: keep it beside the sources
        return root / ".cache" / "bundle"
    return Path.home() / ".cache" / "imageport" / "bundle"


def verify_bundle(path: Path, sha256: str) -> None:
    """Refuse a bundle file whose digest is not ``sha256`` (or that is not there)."""
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise BundleError(f"agent bundle {path}: cannot read it ({exc.strerror})") from None
    if actual != sha256.lower():
        raise BundleError(f"agent bundle {path}: sha256 is {actual}, expected {sha256.lower()}; not using it")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One build at a time per cache directory (parallel test workers, two CLI runs)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def agent_bundle() -> AgentBundle:
    """The bundle for this checkout: reused from the cache when its sources are unchanged, built otherwise."""
    version = source_version()
    directory = cache_dir()
    path = directory / f"imageport-agent-{version}.pex"
    with _locked(directory):
        if not path.exists():
            deps = _dependencies(directory)
            _build(path, version, deps)
            prune(directory, keep={path, deps})
    return AgentBundle(path, file_sha256(path), version, PROTOCOL_VERSION)


def prune(directory: Path, keep: set[Path], bundles: int = KEEP_BUNDLES) -> list[Path]:
    """Remove what earlier builds left in the cache: dependency pexes no longer used and all but the newest
    ``bundles`` agent bundles (a source edit makes a new one; a run still delivering an older one is served by
    keeping a few). Called under the cache lock; returns what was removed."""
    olds = sorted(directory.glob("imageport-agent-*.pex"), key=lambda p: p.stat().st_mtime, reverse=True)
    doomed = [p for p in olds if p not in keep][max(0, bundles - len(keep & set(olds))) :]
    doomed += [p for p in directory.glob("deps-*.pex") if p not in keep]
    doomed += list(directory.glob(".*.partial"))  # a build that was killed
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def build_bundle(out_dir: Path) -> AgentBundle:
    """The bundle, copied into ``out_dir`` (the CLI's ``imageport engine bundle --out DIR``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: not a directory")
    bundle = agent_bundle()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / bundle.path.name
    partial = out_dir / f".{bundle.path.name}.partial"
    shutil.copyfile(bundle.path, partial)
    os.replace(partial, target)
    verify_bundle(target, bundle.sha256)
    return AgentBundle(target, bundle.sha256, bundle.version, bundle.protocol)


def complete_platform(python: tuple[int, int]) -> dict[str, object]:
    """A pex "complete platform" for CPython ``python`` on manylinux x86_64: the marker values and wheel tags
    pip needs to resolve for an interpreter that is not here (abbreviated ``--platform`` strings lack
    ``python_full_version``, which some requirements' markers use)."""
    from packaging.tags import compatible_tags, cpython_tags

    platforms = []
    for minor in GLIBC_MINORS:
        platforms.append(f"manylinux_2_{minor}_x86_64")
        if minor in LEGACY_MANYLINUX:
            platforms.append(f"{LEGACY_MANYLINUX[minor]}_x86_64")
    abi = f"cp{python[0]}{python[1]}"
    tags = [*cpython_tags(python, [abi], platforms), *compatible_tags(python, abi, platforms)]
    dotted = f"{python[0]}.{python[1]}"
    markers = {
        "implementation_name": "cpython", "implementation_version": f"{dotted}.0", "os_name": "posix",
        "platform_machine": "x86_64", "platform_python_implementation": "CPython", "platform_release": "",
        "platform_system": "Linux", "platform_version": "", "python_full_version": f"{dotted}.0",
        "python_version": dotted, "sys_platform": "linux",
    }  # fmt: skip
    return {"marker_environment": markers, "compatible_tags": [str(tag) for tag in tags]}


def _platform_args() -> list[str]:
    return [arg for python in PYTHONS for arg in ("--complete-platform", json.dumps(complete_platform(python)))]


def _pex(command: list[str], what: str) -> None:
    # pip runs isolated under pex; a process-wide CA override meant for something else (a test's
    # stand-in sets REQUESTS_CA_BUNDLE) must not replace the system's trust for the package index.
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    full = [sys.executable, "-m", "pex", *command, "--no-build", "--no-compile", "--python-shebang",
            "/usr/bin/env python3"]  # fmt: skip
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"agent bundle: {what}: pex did not run ({exc})") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BundleError(f"agent bundle: {what} failed (pex exit {done.returncode}):\n{tail}")


def _dependencies(directory: Path) -> Path:
    """The third-party wheels for every platform, as a pex (the only step that reaches a package index)."""
    digest = hashlib.sha256(repr((REQUIREMENTS, PYTHONS, list(GLIBC_MINORS))).encode()).hexdigest()[:16]
    deps = directory / f"deps-{digest}.pex"
    if not deps.exists():
        partial = directory / f".deps-{digest}.partial"
        _pex([*REQUIREMENTS, *_platform_args(), "-o", str(partial)], "resolving the dependencies")
        os.replace(partial, deps)
    return deps


def _build(path: Path, version: str, deps: Path) -> None:
    package = _package_root()
    with tempfile.TemporaryDirectory(prefix="imageport-bundle-") as tmp:
        staged = Path(tmp) / "src" / "imageport"
        shutil.copytree(package, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (staged / "engine" / VERSION_MODULE).write_text(
            f'"""Written by the bundle build."""\n\nVERSION = {version!r}\nPROTOCOL = {PROTOCOL_VERSION}\n'
        )
        partial = Path(tmp) / path.name
        _pex(["-D", str(staged.parent), "--pex-repository", str(deps), *REQUIREMENTS, *_platform_args(),
              "-m", ENTRY, "--inherit-path=fallback", "-o", str(partial)], f"building {path.name}")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), path.with_suffix(".partial"))
        os.replace(path.with_suffix(".partial"), path)
