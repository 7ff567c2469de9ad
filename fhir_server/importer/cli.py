"""The ``import`` sub-command's arguments, and the call into :func:`run_import`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from fhir_server.importer.files import CHUNK_LINES
from fhir_server.settings import Settings

HELP = """Load Bundles (.json) and NDJSON (.ndjson, .ndjson.gz) files or directories.
A transaction Bundle is one transaction (a failing file is reported and skipped), a batch
Bundle a batch; other Bundles, single resources and NDJSON lines are upserted (PUT) under
their id. A Bulk Data export manifest (.json with output[]) stands for the files it
lists (downloaded when they are URLs; --token for requiresAccessToken).
Safe to run twice: POSTs without ifNoneExist become PUTs to their urn:uuid (or
own) id, and resources without an id get one derived from their content."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``import`` to the sub-parsers of ``fhir-server``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "import", help="import Bundles and NDJSON files", description=HELP)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="files or directories (walked recursively)")
    # dest differs from serve's --workers, which main() turns into a setting.
    parser.add_argument("--workers", dest="import_workers", type=_positive,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--concurrency", type=_positive, default=4,
                        help="work items each worker runs at once (default 4)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first problem and exit with status 1")
    parser.add_argument("--chunk-lines", type=_positive, default=CHUNK_LINES,
                        help=f"NDJSON lines per work item (default {CHUNK_LINES})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--errors", metavar="FILE",
                        help="write every problem to FILE, one per line")
    parser.add_argument("--summary-json", metavar="FILE",
                        help="write the summary as JSON to FILE")
    parser.add_argument("--no-reindex", action="store_true",
                        help="do not rebuild the indexes of the tables the import grew "
                             "by a quarter or more (REINDEX TABLE CONCURRENTLY)")
    parser.add_argument("--token", metavar="TOKEN",
                        help="Bearer token for the files of an export manifest that "
                             "requiresAccessToken")
    return parser


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``fhir-server import`` with parsed arguments; returns the exit status."""
    from fhir_server.importer.manifest import ManifestError, expand
    from fhir_server.importer.run import ImportOptions, run_import

    with tempfile.TemporaryDirectory(prefix="fhir-import-") as scratch:
        try:
            paths = expand(list(args.paths), args.token, Path(scratch))
        except ManifestError as exc:
            print(f"fhir-server import: {exc}", file=sys.stderr)
            return 1
        options = ImportOptions(
            paths=paths, workers=args.import_workers, concurrency=args.concurrency,
            strict=args.strict, progress=not args.no_progress,
            chunk_lines=args.chunk_lines, errors_file=args.errors,
            summary_json=args.summary_json, reindex=not args.no_reindex)
        return run_import(settings, options)
