"""Index rows computed only for versions that are stored.

``write.update`` computes a resource's index rows before the write, as the API must
(one statement writes both). The importer's writes are queued, and for a re-run almost
all of them turn out ``unchanged``: no index row is written, yet computing them is the
largest CPU cost of an import. So the importer's ServiceContext gets an indexer whose
``rows`` returns a :class:`DeferredIndex`: the same computation, on the same resource
object, run when the buffered session learns that the write made a new version (or when
anything reads the rows, so any other consumer still sees them).

Nothing changes a resource object between its write call and the sending of the queue
(the service code serializes it before the call and never touches it afterwards).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Sequence, ValuesView
from typing import Any, cast

from fhir_server.search.index import IndexBuilder, IndexRows, TableRows, as_dicts, as_tables


class DeferredIndex(dict[str, list[dict[str, Any]]]):
    """The index rows of one resource, computed on first use."""

    def __init__(self, builder: IndexBuilder, resource: dict[str, Any],
                 bases: Sequence[str]) -> None:
        super().__init__()
        self._builder: IndexBuilder | None = builder
        self._resource = resource
        self._bases = bases
        self._tables: TableRows | None = None

    def tables(self) -> TableRows:
        """The rows as tuples (computed once): what the bulk COPY sends."""
        if self._tables is None:
            assert self._builder is not None
            self._tables = self._builder.table_rows(self._resource, self._bases)
        return self._tables

    def compute(self) -> IndexRows:
        """The rows as JSON objects (computed once); the object itself then holds them."""
        if self._builder is not None:
            tables = self.tables()
            self._builder = None
            super().update(as_dicts(tables))
        return self

    def __len__(self) -> int:
        self.compute()
        return super().__len__()

    def __iter__(self) -> Iterator[str]:
        self.compute()
        return super().__iter__()

    def __getitem__(self, key: str) -> list[dict[str, Any]]:
        self.compute()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.compute()
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """As ``dict.get``, after computing."""
        self.compute()
        return super().get(key, default)

    def items(self) -> ItemsView[str, list[dict[str, Any]]]:  # type: ignore[override]
        """As ``dict.items``, after computing."""
        self.compute()
        return super().items()

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        """As ``dict.keys``, after computing."""
        self.compute()
        return super().keys()

    def values(self) -> ValuesView[list[dict[str, Any]]]:  # type: ignore[override]
        """As ``dict.values``, after computing."""
        self.compute()
        return super().values()


class DeferredIndexer:
    """An IndexBuilder stand-in whose ``rows`` defers the work (see the module doc)."""

    def __init__(self, builder: IndexBuilder) -> None:
        self._builder = builder

    def rows(self, resource: dict[str, Any], bases: Sequence[str] = ()) -> IndexRows:
        """The rows of ``resource``, computed when first needed."""
        return DeferredIndex(self._builder, resource, bases)


def deferred(builder: IndexBuilder) -> IndexBuilder:
    """``builder`` behind a :class:`DeferredIndexer` (only ``rows`` is used on writes)."""
    return cast(IndexBuilder, DeferredIndexer(builder))


def tables_of(index: IndexRows | None) -> TableRows:
    """The tuple rows of a write's index (a :class:`DeferredIndex` computes them only)."""
    if isinstance(index, DeferredIndex):
        return index.tables()
    return as_tables(index or {})
