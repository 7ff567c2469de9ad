"""``fhir-server`` run under another process name: ``python -m bench.serve_ours serve ...``.

Exactly ``fhir_server.cli.main`` with the same arguments; only the command line differs,
so that a broad ``pkill -f fhir_server.cli`` aimed at someone's development server on a
shared machine does not end a benchmark's server in the middle of a run.
"""

from __future__ import annotations

import sys

from fhir_server.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
