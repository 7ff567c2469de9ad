"""Settings: parsing, PG* variables, and every setting documented in the README."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from fhir_server.settings import Settings, SettingsError, database_url_from_pg_env, load_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_defaults_are_embedded() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.embedded
    assert settings.should_migrate_on_start
    assert settings.port == 3000
    assert settings.max_body_bytes == 16 * 1024 * 1024


def test_external_database_does_not_migrate_by_default() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/db"}, env_file=None)
    assert not settings.embedded
    assert not settings.should_migrate_on_start
    forced = load_settings({"DATABASE_URL": "postgresql://u@h/db", "MIGRATE_ON_START": "true"},
                           env_file=None)
    assert forced.should_migrate_on_start


def test_pg_variables() -> None:
    env = {"PGHOST": "db", "PGPORT": "5433", "PGUSER": "app", "PGPASSWORD": "s3cr/t",
           "PGDATABASE": "hospital"}
    assert database_url_from_pg_env(env) == "postgresql://app:s3cr%2Ft@db:5433/hospital"
    assert load_settings(env, env_file=None).database_url == database_url_from_pg_env(env)
    assert database_url_from_pg_env({}) == ""


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=4000\nLOG_FORMAT=text\n")
    settings = load_settings({"PORT": "5000"}, env_file=env_file)
    assert settings.port == 5000
    assert settings.log_format == "text"


@pytest.mark.parametrize("env", [{"PORT": "x"}, {"MIGRATE_ON_START": "maybe"},
                                 {"LOG_FORMAT": "xml"}, {"DB_POOL_MIN": "0"}])
def test_malformed_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(env, env_file=None)


@pytest.mark.parametrize("name", [f.name.upper() for f in fields(Settings)])
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/ready", "/api/docs",
                                  "/api/openapi.json", "/fhir/metadata", "_history"])
def test_every_endpoint_is_documented(path: str) -> None:
    assert path in README


def test_local_bases() -> None:
    settings = load_settings({"FHIR_BASE_URL": "https://h.example/fhir/",
                              "FHIR_BASE_ALIASES": " http://10.0.0.5:3000/fhir, "
                                                   "https://h.example/fhir,"}, env_file=None)
    assert settings.local_bases == ("https://h.example/fhir", "http://10.0.0.5:3000/fhir")
    with pytest.raises(SettingsError, match="FHIR_BASE_ALIASES"):
        load_settings({"FHIR_BASE_ALIASES": "h.example/fhir"}, env_file=None)


def test_required_profiles_must_be_type_url_pairs() -> None:
    settings = load_settings({"REQUIRED_PROFILES": "Patient=http://a/b, Encounter=http://c"},
                             env_file=None)
    assert settings.required_profiles == "Patient=http://a/b, Encounter=http://c"
    with pytest.raises(SettingsError, match="REQUIRED_PROFILES takes Type=url pairs"):
        load_settings({"REQUIRED_PROFILES": "http://a/b"}, env_file=None)
