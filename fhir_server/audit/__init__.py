"""The audit trail: one AuditEvent (IHE Basic Audit Log Patterns) per FHIR interaction.

- :mod:`.builder` turns the facts of one interaction into an AuditEvent (no I/O), so the
  pattern can be tested without a server;
- :mod:`.patients` finds the patients an interaction is about (BALP's Patient-specific
  patterns need them as ``entity[role = Patient]``);
- :mod:`.trail` follows one HTTP request (and the Bundle entries it runs) and decides
  which events it owes;
- :mod:`.writer` stores them (appends them to the staging table, durably, before the
  answer): inside the transaction of a write, or through one group-commit task for
  everything else;
- :mod:`.mover` turns staged events into ordinary, searchable resources in the
  background, a few hundred at a time, each exactly once;
- :mod:`.hook` is the only piece storage sees: the write observer of the current
  request;
- :mod:`.policy` keeps AuditEvents append-only over the API.
"""
