"""docker-compose.yml cannot be run here (no Docker engine), so it is checked against the code it starts; so are
the settings the README tells an operator to set."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from tipline.cli import build_parser
from tipline.evidence_keys import CURRENT_KEY_ENV, KEYS_ENV
from tipline.settings import Settings
from workflows.search_attributes import dev_server_flags

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TIPLINE_SERVICES = [name for name, service in SERVICES.items() if service.get("image") == "tipline:local"]


WORKERS, APIS = ["worker-1", "worker-2"], ["api-1", "api-2"]


def test_the_stack_has_every_part() -> None:
    assert set(SERVICES) == {"postgres", "minio", "minio-setup", "temporal", "temporal-ui", "temporal-setup",
                             "migrate", "sandbox", *WORKERS, *APIS}
    assert set(TIPLINE_SERVICES) == {"temporal-setup", "migrate", "sandbox", *WORKERS, *APIS}


@pytest.mark.parametrize("name", ["temporal-setup", "migrate", "sandbox", *WORKERS, *APIS])
def test_each_service_runs_a_real_tipline_command(name: str) -> None:
    args = build_parser().parse_args(SERVICES[name]["command"])
    assert callable(args.run)


# Read from the environment outside Settings: the evidence key ring, and boto3's credential chain.
NON_SETTINGS_ENV = {KEYS_ENV, CURRENT_KEY_ENV, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
REFERENCE = re.compile(r"^\$\{(\w+):\?[^}]*\}$")


def test_environment_names_only_real_settings() -> None:
    fields = {f"TIPLINE_{name.upper()}" for name in Settings.model_fields}
    for name in TIPLINE_SERVICES:
        unknown = set(SERVICES[name]["environment"]) - fields - NON_SETTINGS_ENV
        assert not unknown, f"{name} sets unknown settings {unknown}"


def compose_settings(service: str) -> Settings:
    """The Settings a service's process would build from its compose environment (references filled in)."""
    environment = SERVICES[service]["environment"]
    values = {key.removeprefix("TIPLINE_").lower(): re.sub(r"\$\{[^}]*\}", "x", str(value))
              for key, value in environment.items() if key not in NON_SETTINGS_ENV}
    return Settings(**values)


@pytest.mark.parametrize("name", [*WORKERS, *APIS])
def test_evidence_lives_in_the_minio_bucket_the_setup_creates(name: str) -> None:
    settings = compose_settings(name)
    assert settings.evidence_backend == "s3"
    endpoint = httpx.URL(settings.evidence_s3_endpoint_url or "")
    assert endpoint.host == "minio"
    minio = SERVICES["minio"]["command"]
    assert minio[:2] == ["server", "/data"] and minio[minio.index("--address") + 1] == f":{endpoint.port}"
    setup = " ".join(SERVICES["minio-setup"]["command"])
    assert f"http://minio:{endpoint.port}" in setup
    assert f"mc mb --ignore-existing tipline/{settings.evidence_s3_bucket}" in setup
    depends = SERVICES[name]["depends_on"]
    assert depends["minio-setup"]["condition"] == "service_completed_successfully"
    assert SERVICES["minio-setup"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["minio"]


@pytest.mark.parametrize("name", [*WORKERS, *APIS])
def test_s3_credentials_and_shared_keys_come_from_the_environment_not_the_file(name: str) -> None:
    environment = SERVICES[name]["environment"]
    minio = SERVICES["minio"]["environment"]
    # Tipline signs with MinIO's own account here; both sides name the same variables, neither holds a value.
    assert REFERENCE.match(environment["AWS_ACCESS_KEY_ID"])[1] == REFERENCE.match(minio["MINIO_ROOT_USER"])[1]
    assert REFERENCE.match(environment["AWS_SECRET_ACCESS_KEY"])[1] == \
        REFERENCE.match(minio["MINIO_ROOT_PASSWORD"])[1]
    # Every host needs the same keys (evidence, payloads, case ids): a key generated per data volume would not do.
    for shared in (KEYS_ENV, "TIPLINE_PAYLOAD_KEYS", "TIPLINE_ID_KEY"):
        assert REFERENCE.match(environment[shared])[1] == shared


def test_workers_and_apis_are_separate_hosts_with_a_data_volume_each() -> None:
    volumes = [next(v for v in SERVICES[name]["volumes"] if v.endswith(":/data")) for name in [*WORKERS, *APIS]]
    assert len(set(volumes)) == 4
    assert all(SERVICES[name]["command"] == ["worker"] for name in WORKERS)
    assert all(SERVICES[name]["command"] == ["api"] for name in APIS)


def test_temporal_is_a_server_on_postgresql_not_the_dev_server() -> None:
    temporal = SERVICES["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:") and "command" not in temporal
    environment = temporal["environment"]
    assert environment["DB"] == "postgres12" and environment["POSTGRES_SEEDS"] == "postgres"
    assert environment["POSTGRES_USER"] == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert REFERENCE.match(environment["POSTGRES_PWD"])[1] == \
        REFERENCE.match(SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"])[1]
    assert temporal["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert httpx.URL("//" + compose_settings("worker-1").temporal_address).host == "temporal"


def test_the_search_attributes_are_registered_by_tipline_temporal_setup() -> None:
    """The dev server took them as flags; a real cluster gets them through the operator service."""
    setup = SERVICES["temporal-setup"]
    assert setup["command"] == ["temporal", "setup"] and "temporal" in setup["depends_on"]
    assert callable(build_parser().parse_args(setup["command"]).run)
    assert dev_server_flags(), "the workflow has search attributes to register"
    for name in [*WORKERS, *APIS]:
        assert SERVICES[name]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def test_the_ui_decodes_through_an_api_that_answers_its_origin() -> None:
    ui = SERVICES["temporal-ui"]
    codec = httpx.URL(ui["environment"]["TEMPORAL_CODEC_ENDPOINT"])
    published_apis = {p.split(":")[1]: name for name in APIS for p in SERVICES[name]["ports"]}
    api = published_apis[str(codec.port)]
    assert codec.path == "/codec"
    ui_port = ui["ports"][0].split(":")[1]
    assert compose_settings(api).resolved_codec_cors_origin == f"http://127.0.0.1:{ui_port}"


def test_published_ports_match_the_default_settings() -> None:
    defaults = Settings()
    published = {name: [p.split(":")[-1] for p in SERVICES[name].get("ports", [])] for name in SERVICES}
    assert str(defaults.api_port) in published["api-1"]
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


def test_every_tipline_variable_the_readme_names_is_read_by_the_code() -> None:
    """A setting misspelt in the README (say in "Running on a real Temporal cluster") is silently ignored when an
    operator sets it: each name must be a Settings field or a variable some code reads by that exact name."""
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"(?<![A-Z0-9_])TIPLINE_[A-Z0-9_]*[A-Z0-9]", readme))
    fields = {f"TIPLINE_{name.upper()}" for name in Settings.model_fields}
    code = "\n".join(path.read_text() for folder in ("tipline", "api", "tests", "benchmarks", "workflows",
                                                     "activities", "detection", "cybertipline")
                     for path in (REPO / folder).rglob("*.py")) + (REPO / "dev").read_text()
    unread = sorted(name for name in named - fields if not re.search(rf"\b{name}\b", code))
    assert not unread, unread
    assert {"TIPLINE_CODEC_CORS_ORIGIN", "TIPLINE_TEMPORAL_UI_URL", "TIPLINE_TEMPORAL_API_KEY",
            "TIPLINE_CODEC_OPERATOR_ORGS"} <= named & fields
