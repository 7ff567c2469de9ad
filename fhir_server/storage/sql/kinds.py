"""The SQL side of each search parameter type: its table, its predicate, its sort key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from psycopg import sql

from fhir_server.storage.sql.common import Fragment, ParamKey
from fhir_server.storage.sql.composite import COMPOSITE
from fhir_server.storage.sql.date import DATE
from fhir_server.storage.sql.number import NUMBER
from fhir_server.storage.sql.quantity import QUANTITY
from fhir_server.storage.sql.reference import REFERENCE
from fhir_server.storage.sql.string import STRING
from fhir_server.storage.sql.token import TOKEN
from fhir_server.storage.sql.uri import URI


class SqlType(Protocol):
    """One index table and how typed values of its parameter type query it."""

    #: table name, e.g. ``idx_token``
    table: str

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A condition on one row ``alias`` of the table matching ANY of ``values``
        (typed by ``fhir_server.search``); it includes ``alias.p = <p>`` or a hash that
        encodes ``p`` (and ``alias.p = <p>`` when ``p`` is an SQL expression)."""
        ...

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """An aggregate over the parameter's rows ``alias`` giving the value to sort by."""
        ...


#: Parameter type code -> its SQL.
SQL_TYPES: Mapping[str, SqlType] = MappingProxyType({
    "token": TOKEN, "string": STRING, "date": DATE, "number": NUMBER, "quantity": QUANTITY,
    "reference": REFERENCE, "uri": URI, "composite": COMPOSITE})
