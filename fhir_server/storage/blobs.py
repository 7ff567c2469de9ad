"""Which objects of the blob store stored Binary versions (and export jobs) refer to
(for the sweep).

Every version counts, history included (a vread of an old Binary still finds its
content), deleted resources' versions too.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from fhir_server.service.binary import CONTENT_EXTENSION
from fhir_server.storage.errors import translated

_REFERENCED = sql.SQL(
    "SELECT DISTINCT part->>'valueString' FROM ("
    # a body is stored once: superseded versions in history, the current one in resource
    "   SELECT content FROM resource_history WHERE resource_type = 'Binary'"
    "   AND content IS NOT NULL"
    "   UNION ALL SELECT content FROM resource WHERE resource_type = 'Binary'"
    "   AND content IS NOT NULL) h"
    " CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(h.content->'_data'->'extension')"
    "   WHEN 'array' THEN h.content->'_data'->'extension' ELSE '[]' END) ext"
    " CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(ext->'extension')"
    "   WHEN 'array' THEN ext->'extension' ELSE '[]' END) part"
    " WHERE ext->>'url' = %s AND part->>'url' = 'key'"
    " AND part->>'valueString' = ANY(%s)"
    # the files of exports not cancelled (their manifests name them)
    " UNION SELECT o->>'key' FROM job j CROSS JOIN LATERAL jsonb_array_elements("
    "   coalesce(j.params->'outputs', '[]')) o"
    " WHERE j.kind = 'export' AND j.status <> 'cancelled' AND o->>'key' = ANY(%s)"
)


class PgBlobReferences:
    """The references from Binary versions to objects."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def referenced(self, keys: Sequence[str]) -> set[str]:
        """The keys among ``keys`` some stored Binary version or export names."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(_REFERENCED, (CONTENT_EXTENSION, list(keys), list(keys)))
                return {str(row[0]) for row in await cur.fetchall()}
