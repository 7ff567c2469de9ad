"""SQL of searches: parsed FHIR search requests compiled to PostgreSQL statements.

``compile`` turns a ``SearchRequest`` (and the caller's access scope) into a ``Query``;
``statements`` wraps it into page, count, estimate and include statements; one module
per search parameter type turns that type's typed values into a condition on one row
of its index table.
"""
