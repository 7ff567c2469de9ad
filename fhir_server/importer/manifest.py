"""Bulk Data export manifests as import input: a ``.json`` file holding ``output[]`` (a
``$export`` completion manifest) stands for the NDJSON files it lists.

Local paths (relative to the manifest's folder) and ``file:`` URLs are read where they
are; ``http(s)`` URLs are downloaded into a scratch folder first, streamed to disk
(never wholly in memory), with the Bearer token when the manifest says
``requiresAccessToken``. A folder of NDJSON needs none of this: it is imported as is.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: a manifest is small: a larger .json is a Bundle, never looked at here
_MANIFEST_MAX_BYTES = 16 * 1024 * 1024
_DOWNLOAD_TIMEOUT_SECONDS = 300


class ManifestError(ValueError):
    """A manifest that cannot be followed (a file missing, a download refused)."""


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest ``path`` holds, or None when it is something else (a Bundle...)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    if path.stat().st_size > _MANIFEST_MAX_BYTES:
        return None
    try:
        value = json.loads(path.read_bytes())
    except (ValueError, OSError):
        return None  # reported by the importer as it reads the file
    if (isinstance(value, dict) and "resourceType" not in value
            and isinstance(value.get("output"), list)):
        return value
    return None


def expand(paths: list[str], token: str | None, scratch: Path) -> list[str]:
    """``paths`` with each manifest replaced by the files it lists (downloaded into
    ``scratch`` when remote)."""
    out: list[str] = []
    for raw in paths:
        manifest = read_manifest(Path(raw))
        if manifest is None:
            out.append(raw)
            continue
        needs_token = bool(manifest.get("requiresAccessToken"))
        for number, output in enumerate(manifest["output"], 1):
            url = output.get("url") if isinstance(output, dict) else None
            if not isinstance(url, str):
                raise ManifestError(f"{raw}: output {number} has no url")
            out.append(str(_local(Path(raw).parent, url, number, output.get("type"),
                                  token if needs_token else None, scratch)))
    return out


def _local(folder: Path, url: str, number: int, rtype: Any, token: str | None,
           scratch: Path) -> Path:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        target = scratch / f"{number:05d}-{rtype if isinstance(rtype, str) else 'out'}.ndjson"
        _download(url, token, target)
        return target
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme:
        raise ManifestError(f"{url}: only local paths, file: and http(s) URLs are read")
    return folder / url


def _download(url: str, token: str | None, target: Path) -> None:
    headers = {"Accept": "application/fhir+ndjson"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as answer, \
                target.open("wb") as file:
            shutil.copyfileobj(answer, file, 1 << 20)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise ManifestError(f"{url}: {exc}") from None
