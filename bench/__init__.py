"""Benchmarks of the FHIR server against bare baselines (see bench/README.md)."""
