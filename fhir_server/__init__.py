"""A FHIR R4 (4.0.1) server on PostgreSQL."""

__version__ = "0.1.0"
