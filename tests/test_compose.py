"""docker-compose.yml, checked without Docker (none runs on CI machines): the stack the README
describes, started in dependency order, configured only with variables the code reads, and
mounting files that exist."""

from __future__ import annotations

import inspect
from pathlib import Path

import pydantic_settings
import pytest
import yaml

import lrs.settings
import sinks.settings
import streams.settings

ROOT = Path(__file__).resolve().parent.parent
STACK = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = STACK["services"]


def known_variables() -> set[str]:
    """Every LRS_* variable some settings class reads."""
    names: set[str] = set()
    for module in (lrs.settings, streams.settings, sinks.settings):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, pydantic_settings.BaseSettings) and cls is not pydantic_settings.BaseSettings:
                prefix = cls.model_config.get("env_prefix", "")
                names |= {  # a field read under another name (validation_alias) is that variable
                    (
                        info.validation_alias
                        if isinstance(info.validation_alias, str)
                        else f"{prefix}{field}"
                    ).upper()
                    for field, info in cls.model_fields.items()
                }
    return names


def test_the_whole_stack_is_there():
    wanted = {
        "postgres",
        "kafka",
        "clickhouse",
        "mongodb",
        "cassandra",
        "lrs",
        "worker",
        "prometheus",
        "grafana",
    }
    assert wanted <= SERVICES.keys()
    assert SERVICES["lrs"]["deploy"]["replicas"] >= 2
    assert "KAFKA_PROCESS_ROLES" in SERVICES["kafka"]["environment"], "Kafka runs in KRaft mode"


@pytest.mark.parametrize("name", ["postgres", "kafka", "clickhouse", "mongodb", "cassandra", "lrs", "worker"])
def test_services_have_healthchecks_and_wait_for_healthy_dependencies(name: str):
    service = SERVICES[name]
    assert service["healthcheck"]["test"], name
    for dependency, condition in service.get("depends_on", {}).items():
        assert dependency in SERVICES
        if "healthcheck" in SERVICES[dependency]:
            assert condition["condition"] == "service_healthy", (
                f"{name} must wait for {dependency} to be healthy"
            )


def test_no_dependency_cycles():
    seen: dict[str, int] = {}

    def visit(name: str) -> None:
        assert seen.get(name) != 1, f"cycle through {name}"
        if seen.get(name) == 2:
            return
        seen[name] = 1
        for dependency in SERVICES[name].get("depends_on", {}):
            visit(dependency)
        seen[name] = 2

    for name in SERVICES:
        visit(name)


def test_lrs_variables_are_ones_the_code_reads():
    known = known_variables()
    for name in ("lrs", "worker"):
        used = {k for k in SERVICES[name]["environment"] if k.startswith("LRS_")}
        assert used - known == set(), f"{name} sets variables nothing reads: {used - known}"
    assert {"LRS_CLICKHOUSE_URL", "LRS_KAFKA_BOOTSTRAP", "LRS_DATABASE_URL"} <= set(
        SERVICES["worker"]["environment"]
    )


def test_mounted_files_exist_and_are_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    for variable in known_variables():
        assert f"`{variable}`" in readme, f"README's configuration table lacks {variable}"


def test_the_clickhouse_server_is_the_release_chdb_embeds(tmp_path: Path):
    """The views are tested on chdb; the compose stack's ClickHouse server runs the same release
    (major.minor), so the SQL that passed the tests is the SQL production runs."""
    from sinks.clickhouse import connect

    client = connect(None, tmp_path)
    try:
        (engine,) = client.query("SELECT version()").result_rows[0]
    finally:
        client.close()
    image = SERVICES["clickhouse"]["image"]
    assert image.split(":")[1] == ".".join(engine.split(".")[:2]), (image, engine)


def test_the_image_leaves_the_embedded_engines_out():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in dockerfile and "[embedded" not in dockerfile
