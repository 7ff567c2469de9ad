"""``fhir-server clients ...`` and ``fhir-server users ...``: who may ask the built-in
authorization server for tokens, and who logs in to it."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg

from fhir_server.settings import Settings

COMMANDS = ("clients", "users")


def add_parsers(sub: Any) -> None:
    """Add ``clients`` and ``users`` to the sub-parsers of ``fhir-server``."""
    clients = sub.add_parser("clients", help="register SMART clients of the built-in "
                                             "authorization server")
    csub = clients.add_subparsers(dest="action", required=True)
    add = csub.add_parser("add", help="register a client; prints its id (and secret, once)")
    add.add_argument("--name", required=True, help="the name users see on the consent page")
    add.add_argument("--kind", required=True, choices=["public", "confidential", "backend"],
                     help="public (browser/native app, PKCE), confidential (has a secret) "
                          "or backend (SMART Backend Services, a JWKS)")
    add.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris",
                     metavar="URI", help="an allowed redirect URI (repeat for more)")
    add.add_argument("--scope", help="scopes the client may be granted (space-separated;"
                                     " wildcards like patient/*.rs)")
    keys = add.add_mutually_exclusive_group()
    keys.add_argument("--jwks", type=Path, metavar="FILE",
                      help="the backend client's public JWKS (a JSON file)")
    keys.add_argument("--jwks-url", metavar="URL", help="where the backend client "
                                                        "publishes its JWKS")
    csub.add_parser("list", help="list the clients")
    remove = csub.add_parser("remove", help="remove a client (its tokens are revoked)")
    remove.add_argument("client_id", metavar="ID")

    users = sub.add_parser("users", help="people who log in to the built-in "
                                         "authorization server")
    usub = users.add_subparsers(dest="action", required=True)
    uadd = usub.add_parser("add", help="add a user (or set a new password)")
    uadd.add_argument("username")
    uadd.add_argument("--fhir-user", metavar="REF",
                      help="the FHIR resource the person is, e.g. Practitioner/123")
    uadd.add_argument("--password-stdin", action="store_true",
                      help="read the password from standard input (else: prompt)")
    usub.add_parser("list", help="list the users")
    disable = usub.add_parser("disable", help="disable a user (their refresh tokens are "
                                              "revoked)")
    disable.add_argument("username")


def _fail(message: str) -> int:
    print(f"fhir-server: {message}", file=sys.stderr)
    return 1


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``clients`` or ``users``; returns the exit status."""
    from fhir_server.auth.server.store import Store

    store = Store.connect(settings.database_url, max_size=1)
    try:
        store.pool.wait(timeout=15)
        if args.command == "clients":
            return _clients(store, args)
        return _users(store, args)
    except psycopg.errors.UndefinedTable:
        return _fail("the authorization server's tables are missing: run "
                     "'fhir-server migrate' first")
    except (psycopg.OperationalError, TimeoutError) as exc:
        return _fail(f"cannot reach the database: {exc}")
    finally:
        store.close()


def _clients(store: Any, args: argparse.Namespace) -> int:
    from fhir_server.auth.server.hashing import new_token, token_hash
    from fhir_server.auth.server.models import DEFAULT_APP_SCOPE, DEFAULT_BACKEND_SCOPE

    if args.action == "list":
        for c in store.clients():
            state = " (disabled)" if c.disabled else ""
            uris = ",".join(c.redirect_uris) or c.jwks_uri or ("inline JWKS" if c.jwks else "-")
            print(f"{c.client_id}\t{c.kind}\t{c.name}{state}\t{uris}\t{c.scope}")
        return 0
    if args.action == "remove":
        if not store.remove_client(args.client_id):
            return _fail(f"no client {args.client_id}")
        print(f"removed {args.client_id}")
        return 0
    kind = args.kind
    jwks = None
    if args.jwks is not None:
        try:
            jwks = orjson.loads(args.jwks.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            return _fail(f"cannot read the JWKS {args.jwks}: {exc}")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            return _fail("--jwks must be a JWKS: {\"keys\": [...]}")
        if any("d" in k for k in jwks["keys"] if isinstance(k, dict)):
            return _fail("--jwks holds a private key: give the public keys only")
    if kind == "backend" and jwks is None and not args.jwks_url:
        return _fail("a backend client needs --jwks FILE or --jwks-url URL")
    if kind != "backend" and (jwks is not None or args.jwks_url):
        return _fail("--jwks and --jwks-url are for backend clients")
    if kind != "backend" and not args.redirect_uris:
        return _fail(f"a {kind} client needs at least one --redirect-uri")
    secret = new_token() if kind == "confidential" else None
    scope = args.scope or (DEFAULT_BACKEND_SCOPE if kind == "backend" else DEFAULT_APP_SCOPE)
    client_id = store.add_client(
        name=args.name, kind=kind, secret_hash=token_hash(secret) if secret else None,
        redirect_uris=args.redirect_uris, scope=" ".join(scope.split()), jwks=jwks,
        jwks_uri=args.jwks_url)
    print(f"client_id: {client_id}")
    if secret:
        print(f"client_secret: {secret}")
        print("(the secret is shown only now; it is stored hashed)", file=sys.stderr)
    return 0


def _users(store: Any, args: argparse.Namespace) -> int:
    from fhir_server.auth.server.hashing import hash_password

    if args.action == "list":
        for u in store.users():
            state = "disabled" if u.disabled else "active"
            print(f"{u.username}\t{u.fhir_user or '-'}\t{state}")
        return 0
    if args.action == "disable":
        if not store.disable_user(args.username):
            return _fail(f"no user {args.username}")
        print(f"disabled {args.username}")
        return 0
    fhir_user = args.fhir_user
    if fhir_user and (fhir_user.count("/") != 1 or not fhir_user.split("/")[1]):
        return _fail("--fhir-user must be a reference like Practitioner/123")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.username}: ")
        if getpass.getpass("Again: ") != password:
            return _fail("the passwords differ")
    if len(password) < 8:
        return _fail("the password must have at least 8 characters")
    store.add_user(args.username, hash_password(password), fhir_user)
    print(f"user {args.username} saved")
    return 0
