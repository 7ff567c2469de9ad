"""Wire formats besides JSON: FHIR XML (``xml_read``, ``xml_write``) over one element
table (``xml_layout``)."""
