"""FHIR wire details: negotiation, headers, bodies and responses."""
