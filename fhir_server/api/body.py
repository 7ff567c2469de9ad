"""Reading request bodies safely: size limit, UTF-8, JSON syntax, nesting depth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.errors import BadRequest, PayloadTooLarge

_BOM = b"\xef\xbb\xbf"


async def read_limited(stream: AsyncIterator[bytes], content_length: str | None,
                       max_bytes: int) -> bytes:
    """Collect a body, refusing it (413) as soon as it exceeds ``max_bytes``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if declared > max_bytes:
            raise PayloadTooLarge(f"the body ({declared} bytes) exceeds the limit of "
                                  f"{max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse a JSON body; BadRequest for empty, non-UTF-8, malformed or too deep input.

    orjson rejects invalid UTF-8 and caps nesting at 1024 itself; the walk below applies
    our tighter depth limit and refuses NUL characters, which PostgreSQL's jsonb cannot
    store (they would otherwise surface as database errors).
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            raise BadRequest("the request body is not valid UTF-8") from None
        if "recursion" in message.lower() or "depth limit" in message.lower():
            raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels") from None
        raise BadRequest(f"the request body is not valid JSON: {message}") from None
    check_tree(value, max_depth)
    return value


def check_tree(root: Any, max_depth: int) -> None:
    """BadRequest when ``root`` nests deeper than ``max_depth`` or holds NUL characters."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels")
        if isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    raise BadRequest("JSON keys must not contain NUL characters")
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str) and "\x00" in child:
                    raise BadRequest(f"the value of {key!r} contains a NUL character")
        elif isinstance(node, list):
            for child in node:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str) and "\x00" in child:
                    raise BadRequest("a JSON string contains a NUL character")


def parse_json_exact(raw: bytes, max_depth: int) -> Any:
    """Like :func:`parse_json`, but decimals become ``Decimal`` so no digit is lost.

    For bodies whose resources are changed and re-serialized (Bundles): slower than
    orjson, exact where it matters.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    if not text.strip():
        raise BadRequest("the request body is empty")
    try:
        value = json.loads(text, parse_float=Decimal)
    except RecursionError:
        raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    check_tree(value, max_depth)
    return value
