"""``fhir-server token`` and ``fhir-server keys``: operators' tokens and signing keys.

Both need database access (the signing keys are in it), which is what makes them the
operator's: whoever can run them can read the database anyway.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg

from fhir_server.auth.keys import load_keys, rotate_keys
from fhir_server.auth.scopes import resource_scopes
from fhir_server.auth.tokens import issue_access_token, issuer_for
from fhir_server.settings import Settings

#: the client id of the tokens ``fhir-server token`` prints
CLI_CLIENT = "fhir-server-cli"


def add_parsers(sub: Any) -> None:
    """The ``token`` and ``keys`` subcommands."""
    token = sub.add_parser("token", help="print a signed access token (operator use)")
    token.add_argument("--scope", required=True,
                       help='SMART scopes, e.g. "system/*.read" or "system/*.*"')
    token.add_argument("--patient", help="the launch patient of patient/ scopes")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (3600)")
    token.add_argument("--client", default=CLI_CLIENT, help=f"client id ({CLI_CLIENT})")
    token.add_argument("--aud", help="the FHIR base URL it is for (FHIR_BASE_URL, else "
                                     "http://localhost:PORT/fhir)")
    keys = sub.add_parser("keys", help="the token signing keys")
    keys.add_argument("action", choices=["list", "rotate"],
                      help="list the published keys, or make a new key the signer")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``token`` or ``keys``; returns the exit status."""
    try:
        with psycopg.connect(settings.database_url) as conn:
            if args.command == "token":
                return _token(settings, args, conn)
            return _keys(args.action, conn)
    except psycopg.errors.UndefinedTable:
        print("fhir-server: the database has no signing keys table yet: run "
              "'fhir-server migrate' first", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"fhir-server: cannot reach the database: {exc}", file=sys.stderr)
        return 1


def _token(settings: Settings, args: argparse.Namespace, conn: psycopg.Connection[Any]) -> int:
    if args.ttl < 1:
        print("fhir-server: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    scopes = resource_scopes(args.scope)
    if not scopes:
        print(f"fhir-server: {args.scope!r} holds no SMART resource scope "
              "(e.g. system/*.read, patient/Observation.rs)", file=sys.stderr)
        return 2
    if any(s.context == "patient" for s in scopes) and not args.patient:
        print("fhir-server: patient/ scopes need --patient ID", file=sys.stderr)
        return 2
    base = (args.aud or settings.fhir_base_url or
            f"http://localhost:{settings.port}/fhir").rstrip("/")
    token, _ = issue_access_token(
        load_keys(conn), issuer=issuer_for(base), audience=base, client_id=args.client,
        scope=args.scope, ttl=args.ttl, patient=args.patient)
    print(token)
    return 0


def _keys(action: str, conn: psycopg.Connection[Any]) -> int:
    if action == "rotate":
        print(f"new signing key: {rotate_keys(conn)}")
        return 0
    rows = conn.execute("SELECT kid, alg, created_at, retired_at FROM auth_signing_key"
                        " ORDER BY created_at DESC").fetchall()
    for kid, alg, created, retired in rows:
        state = "signing" if retired is None else f"retired {retired:%Y-%m-%d %H:%M}"
        print(f"{kid}  {alg}  created {created:%Y-%m-%d %H:%M}  {state}")
    return 0
