"""What the read cache stores in Redis: the Lua scripts that guard it and the entry codec.

See :mod:`fhir_server.cache.repository` for how BEGIN, END and FILL keep it consistent.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from fhir_server.service.repository import StoredVersion, WriteMethod

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

#: KEYS[1]; ARGV: ttl_ms, pending_ms. A writer begins: drop the entry, count the writer
#: (a count left by a writer that died more than pending_ms ago is reset first).
BEGIN = _NOW + """
local k = KEYS[1]
if tonumber(redis.call('HGET', k, 'pt') or '0') + tonumber(ARGV[2]) <= now then
  redis.call('HDEL', k, 'p')
end
redis.call('HDEL', k, 'd')
redis.call('HINCRBY', k, 'p', 1)
redis.call('HSET', k, 'pt', string.format('%d', now))
redis.call('PEXPIRE', k, ARGV[1])
return 1
"""

#: KEYS[1]; ARGV: version (0 = none), writers to uncount, drop (1/0), ttl_ms.
#: A writer ended: raise the floor to its committed version (dropping an older entry).
END = """
local k = KEYS[1]
local v = tonumber(ARGV[1])
local cur = redis.call('HMGET', k, 'v', 'p')
if tonumber(ARGV[2]) > 0 and cur[2] then
  local p = tonumber(cur[2]) - tonumber(ARGV[2])
  if p > 0 then redis.call('HSET', k, 'p', p) else redis.call('HDEL', k, 'p', 'pt') end
end
local newer = v > 0 and (not cur[1] or tonumber(cur[1]) < v)
if newer or ARGV[3] == '1' then redis.call('HDEL', k, 'd') end
if newer then redis.call('HSET', k, 'v', ARGV[1]) end
if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ARGV[4]) end
return 1
"""

#: KEYS[1]; ARGV: version, data, ttl_ms, pending_ms. A reader stores what it read,
#: unless a writer is in flight or a newer version (or this one) is already known.
FILL = """
local k = KEYS[1]
local v = tonumber(ARGV[1])
local cur = redis.call('HMGET', k, 'v', 'p', 'pt')
if cur[2] and tonumber(cur[2]) > 0 then
""" + _NOW + """
  if tonumber(cur[3] or '0') + tonumber(ARGV[4]) > now then return 0 end
end
if cur[1] then
  local cv = tonumber(cur[1])
  if cv > v or (cv == v and redis.call('HEXISTS', k, 'd') == 1) then return 0 end
end
redis.call('DEL', k)
redis.call('HSET', k, 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', k, ARGV[3])
return 1
"""

#: (key, version or 0, writers to uncount, drop the entry): one END call
Settle = tuple[str, int, int, bool]

_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def encode(version: StoredVersion) -> bytes:
    """``1|version|lastUpdated|deleted|method|+/-|content``: compact and cheap to split."""
    head = (f"1|{version.version_id}|{version.last_updated.isoformat()}|{int(version.deleted)}"
            f"|{version.method or ''}|{'-' if version.content is None else '+'}|")
    return head.encode() + (version.content or "").encode()


def decode(resource_type: str, id: str, raw: bytes) -> StoredVersion | None:
    """The StoredVersion of an :func:`encode` value, or None if it is not one."""
    parts = raw.split(b"|", 6)
    if len(parts) != 7 or parts[0] != b"1":
        return None  # another format (a future version of this code): a plain miss
    try:
        method = parts[4].decode() or None
        if method is not None and method not in _METHODS:
            return None
        return StoredVersion(
            resource_type, id, int(parts[1]), datetime.fromisoformat(parts[2].decode()),
            parts[3] == b"1", parts[6].decode() if parts[5] == b"+" else None,
            cast("WriteMethod | None", method))
    except ValueError:
        return None
