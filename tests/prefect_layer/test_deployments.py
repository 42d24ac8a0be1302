"""Every deployment in deployments/prefect.yaml points at a flow that imports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from prefect import Flow

REPO = Path(__file__).resolve().parents[2]


def test_every_entrypoint_is_a_flow() -> None:
    config = yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())
    names = []
    for deployment in config["deployments"]:
        path, _, attribute = deployment["entrypoint"].partition(":")
        spec = importlib.util.spec_from_file_location(f"entry_{deployment['name']}", REPO / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert isinstance(getattr(module, attribute), Flow), deployment["entrypoint"]
        names.append(deployment["name"])
    assert {"hourly", "publish", "convert", "upload", "export", "prepare", "diagnostics"} <= set(names)
