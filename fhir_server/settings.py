"""One frozen Settings object, built once at start from the environment.

A ``.env`` file in the working directory is read too; real environment variables win.
Every field is documented in README.md (a test checks that).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

from dotenv import dotenv_values


class SettingsError(ValueError):
    """A configuration value is malformed."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; the env variable name is the field name upper-cased."""

    #: libpq connection string; empty means: PG* variables if PGHOST is set, else embedded.
    database_url: str = ""
    #: where the embedded PostgreSQL keeps its data when no database is configured.
    data_dir: Path = Path(".data")
    #: apply pending migrations at start (default: true in embedded mode, else false).
    migrate_on_start: bool | None = None
    #: libpq connection string of a PostgreSQL streaming replica for reads, searches and
    #: histories (empty: everything on DATABASE_URL); its pool's connections per worker.
    database_read_url: str = ""
    db_read_pool_min: int = 1
    db_read_pool_max: int = 10
    #: seconds after a caller's write during which its reads stay on the primary (the
    #: replica may not have replayed the write yet); shared through Redis when set.
    read_your_writes_seconds: float = 5.0
    #: reads fall back to the primary while the replica's replay is further behind.
    read_replica_max_lag_seconds: float = 5.0
    #: connections per worker process.
    db_pool_min: int = 2
    db_pool_max: int = 10
    #: seconds a request waits for a free connection before a 503.
    db_pool_timeout: float = 10.0
    #: statement timeout in milliseconds for every query (0 = none).
    db_statement_timeout_ms: int = 30_000
    #: absolute base URL used in links; empty means derived from each request.
    fhir_base_url: str = ""
    #: further base URLs (comma-separated) this server is reached by; references to
    #: them are stored and searched as local, like references to FHIR_BASE_URL.
    fhir_base_aliases: str = ""
    #: largest accepted request body in bytes.
    max_body_bytes: int = 16 * 1024 * 1024
    #: deepest accepted JSON nesting.
    max_json_depth: int = 64
    #: default and largest page size of search and history bundles.
    default_page_size: int = 20
    max_page_size: int = 1000
    #: most resources ``_include``/``_revinclude`` add to one page.
    max_includes: int = 1000
    #: statement timeout of one search, in milliseconds (0 = the general timeout).
    search_timeout_ms: int = 10_000
    #: most parameters (ANDed clauses, repetitions included) one search may have.
    search_max_parameters: int = 40
    #: most values (ORs, counted over all parameters) one search may have.
    search_max_values: int = 1000
    #: most links of one chain (``subject.organization.name`` is 2).
    search_max_chain_depth: int = 3
    #: largest resource in bytes (its JSON), checked on write and while a PATCH applies.
    max_resource_bytes: int = 8 * 1024 * 1024
    #: most bytes of one response body; a page is cut short (with a ``next`` link) before.
    max_response_bytes: int = 8 * 1024 * 1024
    #: most entries of one Bundle sent to the base.
    max_bundle_entries: int = 20_000
    #: most searches (and reads of a type's history) in one batch or transaction.
    max_bundle_searches: int = 100
    #: a SearchParameter's FHIRPath expression: most bytes, and most nodes once parsed.
    fhirpath_max_bytes: int = 4096
    fhirpath_max_nodes: int = 256
    #: largest request head (request line and headers) in bytes: past it a 431.
    max_header_bytes: int = 64 * 1024
    #: seconds a client has to send the request head, and between two body chunks.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    #: most open connections per worker; past it new ones get a 503.
    max_connections: int = 1000
    #: most requests one client may have in flight at once (0: no limit); shared
    #: through Redis when REDIS_URL is set.
    max_in_flight_per_client: int = 64
    #: pool connections per worker kept for reads by id, writes and health: searches,
    #: histories and operations share the rest.
    db_reserved_connections: int = 2
    #: host names (comma-separated; ``*`` any) a request's Host header may name when
    #: FHIR_BASE_URL is not set; links are only ever built from these.
    allowed_hosts: str = "localhost,127.0.0.1,::1"
    #: an S3 API (AWS, MinIO, Ceph...) for Binary content: its endpoint (empty: AWS's
    #: own, from AWS_REGION) and bucket; without a bucket, ``DATA_DIR/blobs`` on disk.
    #: Credentials are boto3's: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the pod's role.
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    #: the bucket's region (empty: boto3's own, AWS_DEFAULT_REGION or ~/.aws/config).
    aws_region: str = ""
    #: largest Binary content (raw upload, JSON ``data`` or an attachment's): past it a 413.
    binary_max_bytes: int = 1024 * 1024 * 1024
    #: a Binary read as FHIR JSON carries its content inline (base64 ``data``) up to
    #: this size; posted as JSON, larger ``data`` is moved to object storage.
    binary_inline_max_bytes: int = 1024 * 1024
    #: ``Attachment.data`` above this size is moved to object storage on write (a Binary).
    attachment_inline_max_bytes: int = 64 * 1024
    #: objects no stored version refers to are deleted once older than this, by a sweep
    #: that runs every BLOB_SWEEP_INTERVAL_SECONDS.
    blob_orphan_grace_seconds: float = 3600.0
    blob_sweep_interval_seconds: float = 600.0
    #: Bulk Data ``$export``: resources read per batch (a cancelled export stops at the
    #: end of its batch) and NDJSON lines per output file (a file is the unit a
    #: crashed export resumes from).
    export_batch_size: int = 2000
    export_file_lines: int = 100_000
    #: seconds an export's worker holds its job without a sign of life; past them
    #: another worker (any replica) takes the job over from its last file.
    export_lease_seconds: float = 60.0
    #: above 0 and with S3: the manifest's file URLs are presigned S3 URLs valid this
    #: long (``requiresAccessToken: false``); 0: files are served through the server.
    export_presigned_url_seconds: int = 0
    #: a folder of the operator's conformance resources (StructureDefinitions, ValueSets,
    #: CodeSystems: single files, Bundles, npm packages unpacked or as .tgz), read at
    #: start besides the shipped ``profiles/*/`` folders.
    profiles_dir: str = ""
    #: profiles every resource of a type must conform to: ``Type=url`` pairs,
    #: comma-separated (a type may repeat); each must be a known profile of its type.
    required_profiles: str = ""
    #: evaluate the FHIRPath invariants of the base definitions (and the narrative,
    #: primitive-array and reference-target rules) on every write and ``$validate``.
    validate_invariants: bool = True
    #: PostgreSQL text search configuration of ``_text``/``_content`` (stemming).
    search_text_language: str = "english"
    host: str = "0.0.0.0"
    port: int = 3000
    workers: int = 1
    #: seconds in-flight requests get to finish on SIGTERM.
    shutdown_grace_seconds: float = 25.0
    log_level: str = "info"
    log_format: str = "json"
    redis_url: str = ""
    #: requests per minute one client may make to /fhir (0: no limit).
    rate_limit_per_minute: int = 0
    #: ``smart``: every /fhir request but discovery needs a valid Bearer token; ``off``:
    #: none is asked for (refused unless the server listens on loopback only).
    auth_mode: str = "smart"
    #: an external authorization server (Keycloak, Entra ID...) whose tokens are
    #: accepted too: its issuer (``iss``), and its JWKS URL (default: from the issuer's
    #: OpenID discovery document).
    auth_issuer: str = ""
    auth_jwks_url: str = ""
    #: audiences (comma-separated) accepted besides the FHIR base URLs.
    auth_audience: str = ""
    #: record an AuditEvent (IHE BALP) for every /fhir request.
    audit: bool = True
    #: lifetime of the access tokens the built-in server issues, in seconds.
    auth_token_ttl_seconds: int = 3600
    #: browser origins allowed to call the API (comma-separated, or ``*``; empty: none).
    cors_origins: str = ""

    @cached_property
    def allowed_host_list(self) -> tuple[str, ...]:
        """``ALLOWED_HOSTS`` lower-cased, as a tuple."""
        return tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        """``CORS_ORIGINS`` as a list (empty: CORS is off)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @cached_property
    def local_bases(self) -> tuple[str, ...]:
        """``FHIR_BASE_URL`` and ``FHIR_BASE_ALIASES``, without trailing slashes."""
        bases = [self.fhir_base_url, *self.fhir_base_aliases.split(",")]
        return tuple(dict.fromkeys(b.strip().rstrip("/") for b in bases if b.strip()))

    @cached_property
    def audiences(self) -> tuple[str, ...]:
        """``AUTH_AUDIENCE`` as a tuple."""
        return tuple(a.strip() for a in self.auth_audience.split(",") if a.strip())

    @property
    def embedded(self) -> bool:
        """True when no external PostgreSQL is configured."""
        return not self.database_url

    @property
    def should_migrate_on_start(self) -> bool:
        """Whether the server applies pending migrations when it starts."""
        if self.migrate_on_start is None:
            return self.embedded
        return self.migrate_on_start


_TRUE = {"1", "true", "yes", "on"}
#: a text search configuration's name, maybe schema-qualified (search.text checks the same)
_TEXT_CONFIG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, raw: str, default: object) -> object:
    if isinstance(default, bool) or (default is None and name == "migrate_on_start"):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{name.upper()} must be true or false, not {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise SettingsError(f"{name.upper()} must be a number, not {raw!r}") from None
    if isinstance(default, Path):
        return Path(raw)
    return raw


def database_url_from_pg_env(env: Mapping[str, str]) -> str:
    """Build a URL from libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE, or ''."""
    host = env.get("PGHOST", "")
    if not host:
        return ""
    user = quote(env.get("PGUSER", "postgres"), safe="")
    password = env.get("PGPASSWORD")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    port = env.get("PGPORT", "5432")
    database = quote(env.get("PGDATABASE", env.get("PGUSER", "postgres")), safe="")
    if host.startswith("/"):
        return f"postgresql://{auth}/{database}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{auth}{host}:{port}/{database}"


def load_settings(env: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"),
                  **overrides: object) -> Settings:
    """Build Settings from ``env`` (default ``os.environ``) over an optional ``.env`` file."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if env is None else env)
    values: dict[str, object] = {}
    for f in fields(Settings):
        key = f.name.upper()
        if key in merged:
            values[f.name] = _convert(f.name, merged[key], f.default)
    if not values.get("database_url"):
        values["database_url"] = database_url_from_pg_env(merged)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    for base in settings.local_bases:
        if not base.startswith(("http://", "https://")):
            raise SettingsError(f"FHIR_BASE_URL and FHIR_BASE_ALIASES take http(s) URLs, "
                                f"not {base!r}")
    if not _TEXT_CONFIG.fullmatch(settings.search_text_language):
        raise SettingsError("SEARCH_TEXT_LANGUAGE must name a text search configuration "
                            f"(english, simple, ...), not {settings.search_text_language!r}")
    for part in settings.required_profiles.split(","):
        if part.strip() and not re.fullmatch(r"\s*[A-Z][A-Za-z]+\s*=\s*\S+\s*", part):
            raise SettingsError("REQUIRED_PROFILES takes Type=url pairs separated by "
                                f"commas, not {part.strip()!r}")
    if settings.auth_mode not in ("smart", "off"):
        raise SettingsError(f"AUTH_MODE must be smart or off, not {settings.auth_mode!r}")
    if settings.auth_jwks_url and not settings.auth_issuer:
        raise SettingsError("AUTH_JWKS_URL needs AUTH_ISSUER: the issuer its tokens name")
    if settings.auth_token_ttl_seconds < 60:
        raise SettingsError("AUTH_TOKEN_TTL_SECONDS must be at least 60")
    if settings.log_format not in ("json", "text"):
        raise SettingsError("LOG_FORMAT must be json or text")
    if settings.db_pool_min < 1 or settings.db_pool_max < settings.db_pool_min:
        raise SettingsError("DB_POOL_MIN must be >= 1 and <= DB_POOL_MAX")
    if settings.db_read_pool_min < 1 or settings.db_read_pool_max < settings.db_read_pool_min:
        raise SettingsError("DB_READ_POOL_MIN must be >= 1 and <= DB_READ_POOL_MAX")
    if settings.read_your_writes_seconds < 0 or settings.read_replica_max_lag_seconds <= 0:
        raise SettingsError("READ_YOUR_WRITES_SECONDS must be >= 0 and "
                            "READ_REPLICA_MAX_LAG_SECONDS above 0")
    if not 0 <= settings.db_reserved_connections < settings.db_pool_max:
        raise SettingsError("DB_RESERVED_CONNECTIONS must be >= 0 and below DB_POOL_MAX")
    if not 0 < settings.binary_max_bytes < 2**31:
        raise SettingsError("BINARY_MAX_BYTES must be above 0 and below 2 GiB "
                            "(Attachment.size is an unsignedInt)")
    return settings
