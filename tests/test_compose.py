"""docker-compose.yml cannot be run here (no Docker engine), so it is checked against the code it starts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tipline.cli import build_parser
from tipline.settings import Settings
from workflows.search_attributes import dev_server_flags

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TIPLINE_SERVICES = [name for name, service in SERVICES.items() if service.get("image") == "tipline:local"]


def test_the_stack_has_every_part() -> None:
    assert set(SERVICES) == {"postgres", "temporal", "migrate", "sandbox", "worker", "api"}
    assert set(TIPLINE_SERVICES) == {"temporal", "migrate", "sandbox", "worker", "api"}


@pytest.mark.parametrize("name", ["migrate", "sandbox", "worker", "api"])
def test_each_service_runs_a_real_tipline_command(name: str) -> None:
    args = build_parser().parse_args(SERVICES[name]["command"])
    assert callable(args.run)


def test_environment_names_only_real_settings() -> None:
    fields = {f"TIPLINE_{name.upper()}" for name in Settings.model_fields}
    for name in TIPLINE_SERVICES:
        unknown = set(SERVICES[name]["environment"]) - fields
        assert not unknown, f"{name} sets unknown settings {unknown}"


def test_temporal_registers_the_search_attributes_the_workflow_uses() -> None:
    command = SERVICES["temporal"]["command"]
    flags = [command[i:i + 2] for i, value in enumerate(command) if value == "--search-attribute"]
    assert [flag for pair in flags for flag in pair] == dev_server_flags()


def test_published_ports_match_the_default_settings() -> None:
    defaults = Settings()
    published = {name: [p.split(":")[-1] for p in SERVICES[name].get("ports", [])] for name in SERVICES}
    assert str(defaults.api_port) in published["api"]
    assert str(defaults.sandbox_port) in published["sandbox"]
    assert defaults.temporal_address.rsplit(":", 1)[1] in published["temporal"]
    assert all(p.startswith("127.0.0.1:") for s in SERVICES.values() for p in s.get("ports", []))


def test_dependencies_name_services_that_exist() -> None:
    for service in SERVICES.values():
        assert set(service.get("depends_on", {})) <= set(SERVICES)


def test_the_image_contains_every_package_the_project_ships() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.MULTILINE))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
