"""Observability: Prometheus metrics, the access log and request ids.

Modules:

- ``middleware``: ``ObservabilityMiddleware`` (request id, access log, request metrics).
- ``metrics``: the metrics, ``metrics_route`` (``GET /metrics``), ``sample_forever``,
  ``set_background_jobs``.
- ``multiproc``: ``prepare_multiprocess_dir`` for the CLI, dead-worker clean-up.
- ``context``: ``current_request_id``, ``note_bundle_type``, ``RequestIdFilter``.
- ``access_log`` and ``interactions``: the access record and the label values.

This package imports nothing heavy: the CLI imports ``multiproc`` before workers start,
and prometheus_client must not be imported before ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from fhir_server.observability.context import (
    RequestIdFilter,
    current_request_id,
    note_bundle_type,
)

__all__ = ["RequestIdFilter", "current_request_id", "note_bundle_type"]
