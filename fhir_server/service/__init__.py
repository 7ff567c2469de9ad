"""What each FHIR interaction means, independent of HTTP and of storage."""
