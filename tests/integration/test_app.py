"""The application's lifespan, in process."""

from __future__ import annotations

import gc

from starlette.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import load_settings


def test_startup_objects_are_kept_out_of_the_cyclic_collector(migrated_url: str) -> None:
    settings = load_settings({"DATABASE_URL": migrated_url}, env_file=None)
    gc.unfreeze()
    try:
        with TestClient(create_app(settings)) as client:
            assert gc.get_freeze_count() > 10_000  # definitions, registry, routes
            assert client.get("/fhir/Patient/none-such").status_code == 404
    finally:
        gc.unfreeze()
