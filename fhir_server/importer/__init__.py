"""``fhir-server import``: bulk loading of Bundles and NDJSON through the service layer.

Public API: :func:`fhir_server.importer.run.run_import` with
:class:`fhir_server.importer.run.ImportOptions`; :func:`~fhir_server.importer.process.
prepare_bundle` and :func:`~fhir_server.importer.process.resource_id` state the
idempotency rules.
"""
