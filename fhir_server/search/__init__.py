"""FHIR search: registry of SearchParameters, value extraction, index tables, query compiler.

Nothing here knows HTTP. The modules named after parameter types (token, string, date,
reference, number, quantity, uri, composite) each own one index table: the rows written
for a resource and the SQL predicate a search value compiles to.
"""
