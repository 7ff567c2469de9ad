"""The ``fhir-server`` command: serve, migrate, import."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from fhir_server import __version__
from fhir_server.logs import configure_logging
from fhir_server.paths import data_dir
from fhir_server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("fhir_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (default 0.0.0.0:3000)")
    serve.add_argument("--host", help="address to listen on (HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (WORKERS)")
    migrate = sub.add_parser("migrate", help="apply pending migrations")
    migrate.add_argument("--info", action="store_true",
                         help="list applied and pending migrations instead")
    migrate.add_argument("--allow-compatible-ahead", action="store_true",
                         help="succeed without migrating when the database has newer"
                              " migrations that declare this release compatible (what"
                              " an older release finds after a rollback)")
    from fhir_server.auth import token_cli
    from fhir_server.importer.cli import add_parser as add_import_parser

    add_import_parser(sub)
    token_cli.add_parsers(sub)
    from fhir_server.auth.cli import add_parsers as add_auth_parsers

    add_auth_parsers(sub)
    return parser


def resolve_database(settings: Settings) -> tuple[Settings, Any]:
    """Settings with a database URL: the configured one, or a started embedded server.

    Returns the embedded server's handle too (None when external); keep it referenced.
    """
    if not settings.embedded:
        return settings, None
    from dataclasses import replace

    from fhir_server.storage.embedded import start_embedded

    pg_dir = (settings.data_dir / "pg").resolve()
    log.info("no DATABASE_URL or PGHOST set: using an embedded PostgreSQL with its data "
             "in %s", pg_dir)
    url, handle = start_embedded(settings.data_dir)
    log.info("embedded PostgreSQL is running (%s)", url)
    # Keep migrate-on-start's embedded default although the URL is now set.
    return replace(settings, database_url=url,
                   migrate_on_start=settings.should_migrate_on_start), handle


def _migrate(settings: Settings, show_info: bool, allow_compatible_ahead: bool = False) -> int:
    from fhir_server.storage import admin, migrate, migration_files

    folder = data_dir("migrations")
    try:
        if show_info:
            print(migration_files.format_info(admin.migration_info(settings.database_url, folder)))
        elif allow_compatible_ahead and admin.start_check(
                settings.database_url, folder) == admin.AHEAD_COMPATIBLE:
            # A migration step run before every start (a Kubernetes initContainer) must
            # not stop a rolled-back release that `serve` would run.
            log.warning("the database has migrations newer than this release's files; they "
                        "declare this release compatible (schema_compatibility): nothing "
                        "to apply")
        else:
            applied = admin.apply_migrations(settings.database_url, folder)
            names = ", ".join(m.script for m in applied) or "nothing to apply"
            log.info("migrations applied: %s", names)
    except migrate.MigrationError as exc:
        log.error("migration failed: %s", exc)
        return 1
    return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _announce_auth(settings: Settings) -> None:
    """The first lines a newcomer reads: how requests are authorized, how to get in."""
    if settings.auth_mode == "off":
        log.warning("AUTH_MODE=off: every request is answered without a token; allowed "
                    "because the server listens on loopback only (%s)", settings.host)
        return
    base = settings.fhir_base_url or f"http://localhost:{settings.port}/fhir"
    log.info("authorization is on (AUTH_MODE=smart): /fhir needs a Bearer token. For an "
             "operator's token run: .venv/bin/fhir-server token --scope 'system/*.*' "
             "--aud %s   (SMART apps: register with 'fhir-server clients add', see the "
             "README)", base)


def _serve(settings: Settings) -> int:
    import psycopg
    import uvicorn

    from fhir_server.storage import admin

    if settings.auth_mode == "off" and not _loopback(settings.host):
        log.error("refusing to start: AUTH_MODE=off answers every request without a token, "
                  "so it is only allowed while listening on loopback (HOST=127.0.0.1), not "
                  "on %s", settings.host)
        return 2
    _announce_auth(settings)

    folder = data_dir("migrations")
    try:
        if settings.should_migrate_on_start and _migrate(settings, show_info=False):
            return 1
        state = admin.start_check(settings.database_url, folder)
        if not admin.text_search_config_known(settings.database_url,
                                              settings.search_text_language):
            log.error("refusing to start: SEARCH_TEXT_LANGUAGE=%s is not a text search "
                      "configuration of the database (see: SELECT cfgname FROM "
                      "pg_ts_config)", settings.search_text_language)
            return 1
    except psycopg.OperationalError as exc:
        # Come up anyway: liveness answers, readiness says 503 until the database is back.
        log.error("the database is unreachable (%s); serving, with /api/v1/ready at 503 "
                  "until it is back (migrations not checked)", str(exc).strip())
        state = "unknown"
    if state in ("ahead", "checksum mismatch", "failed"):
        log.error("refusing to start: the database's migrations are %s compared with this "
                  "release's files; run 'fhir-server migrate --info'", state)
        return 1
    if state == admin.AHEAD_COMPATIBLE:
        log.warning("the database has migrations newer than this release's files; they "
                    "declare this release compatible (schema_compatibility), so serving")
    if state == "pending":
        log.warning("migrations are pending: /api/v1/ready answers 503 until "
                    "'fhir-server migrate' has run")
    # Before anything imports prometheus_client: workers share metric files there.
    from fhir_server.observability.multiproc import prepare_multiprocess_dir

    prepare_multiprocess_dir(None)
    # Worker processes build their own Settings from the environment.
    os.environ["DATABASE_URL"] = settings.database_url
    # With one worker uvicorn re-raises SIGTERM after its graceful shutdown, which would end
    # the process as killed (143); it installs its own handler while serving and puts
    # this no-op back afterwards, so a drained shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    log.info("serving on http://%s:%s with %s worker(s)", settings.host, settings.port,
             settings.workers)
    uvicorn.run(
        "fhir_server.app:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # bounded heads (MAX_HEADER_BYTES), head and body timeouts, and every refusal
        # (an over-long URL: 414) as an OperationOutcome
        http="fhir_server.http.protocol:FhirHttpToolsProtocol",
        ws="none",  # no WebSocket routes: an Upgrade is not worth a protocol switch
        # MAX_CONNECTIONS, answered 503 by the protocol above
        limit_concurrency=settings.max_connections,
        # The app sets Date itself, exact to the second (observability/middleware.py).
        date_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        overrides = {k: v for k, v in vars(args).items()
                     if k in ("host", "port", "workers") and v is not None}
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    settings, handle = resolve_database(settings)
    try:
        if args.command == "migrate":
            return _migrate(settings, args.info, args.allow_compatible_ahead)
        if args.command == "import":
            from fhir_server.importer.cli import run_command

            return run_command(settings, args)
        if args.command in ("token", "keys"):
            from fhir_server.auth import token_cli

            return token_cli.run(settings, args)
        if args.command in ("clients", "users"):
            from fhir_server.auth.cli import run_command as run_auth_command

            return run_auth_command(settings, args)
        return _serve(settings)
    finally:
        del handle


if __name__ == "__main__":
    sys.exit(main())
