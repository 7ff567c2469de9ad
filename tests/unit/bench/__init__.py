"""Tests of the benchmark helpers in bench/ (no database needed)."""
