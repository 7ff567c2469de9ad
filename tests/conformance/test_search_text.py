"""Full-text search over HTTP: ``_text`` (narrative), ``_content`` (the resource's text),
stemming, OR/AND and search expressions, ``:missing``, chains, the ``self`` link, and
``_query`` refused (search.html 3.1.1.6, 3.1.1.7)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.requires(search=[("Patient", "_text"), ("Patient", "_content")])

HEADERS = {"Content-Type": "application/fhir+json"}
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}",
                          content=orjson.dumps(resource), headers=HEADERS)
    assert response.status_code in (200, 201), response.text


def search(client: httpx.Client, path: str, *pairs: tuple[str, str]) -> dict[str, Any]:
    response = client.get(path, params=list(pairs))
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(bundle: dict[str, Any]) -> list[str]:
    return sorted(e["resource"]["id"] for e in bundle.get("entry", [])
                  if e.get("search", {}).get("mode") == "match")


@pytest.fixture(scope="module")
def tag(client: httpx.Client) -> str:
    """A tag unique to this module's run (each client runs it once)."""
    return f"x{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def world(client: httpx.Client, tag: str) -> Iterator[str]:
    meta = {"tag": [{"system": "urn:text", "code": tag}]}
    # The official Patient example (patient-example.json), narrative and all.
    put(client, {
        "resourceType": "Patient", "id": f"{tag}-example", "meta": meta,
        "text": {"status": "generated", "div": XHTML.format(
            "<table><tbody><tr><td>Name</td><td>Peter James <b>Chalmers</b> (&quot;Jim&quot;)"
            "</td></tr><tr><td>Address</td><td>534 Erewhon, Pleasantville, Vic, 3999</td>"
            "</tr><tr><td>Contacts</td><td>Home: unknown. Work: (03) 5555 6473</td></tr>"
            "<tr><td>Id</td><td>MRN: 12345 (Acme Healthcare)</td></tr></tbody></table>")},
        "identifier": [{"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1",
                        "value": "12345", "assigner": {"display": "Acme Healthcare"}}],
        "active": True,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                 {"use": "usual", "given": ["Jim"]}],
        "gender": "male", "birthDate": "1974-12-25",
        "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille",
                     "state": "Vic", "postalCode": "3999"}],
    })
    # Content without a narrative.
    put(client, {"resourceType": "Patient", "id": f"{tag}-plain", "meta": meta,
                 "name": [{"family": "Quixote", "given": ["Alonso"]}], "gender": "male"})
    # A narrative word (zebrafish) the content lacks; a content word (xylophone) the
    # narrative lacks; a stemmed verb (runs).
    put(client, {
        "resourceType": "Observation", "id": f"{tag}-obs", "meta": meta, "status": "final",
        "text": {"status": "additional", "div": XHTML.format("<p>Seen with a zebrafish</p>")},
        "code": {"text": "Exercise tolerance"},
        "subject": {"reference": f"Patient/{tag}-example"},
        "note": [{"text": "The patient runs daily and plays the xylophone"}],
    })
    yield tag


def tagged(tag: str, *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("_tag", f"urn:text|{tag}"), *pairs)


def test_text_and_family_find_the_example(client: httpx.Client, world: str) -> None:
    tag = world
    found = search(client, "/Patient", *tagged(tag, ("_text", "peter"), ("family", "chalmers")))
    assert ids(found) == [f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "peter")))) == [
        f"{tag}-example"]
    # markup and entities are gone, words across tags are found
    assert ids(search(client, "/Patient", *tagged(tag, ("_text", '"james chalmers"')))) == [
        f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_text", "jim pleasantville")))) == [
        f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_text", "td")))) == []


def test_stemming(client: httpx.Client, world: str) -> None:
    tag = world
    assert ids(search(client, "/Observation", *tagged(tag, ("_content", "running")))) == [
        f"{tag}-obs"]
    assert ids(search(client, "/Observation", *tagged(tag, ("_content", "RUN")))) == [
        f"{tag}-obs"]
    assert ids(search(client, "/Observation", *tagged(tag, ("_content", "play")))) == [
        f"{tag}-obs"]


def test_narrative_only_and_content_only(client: httpx.Client, world: str) -> None:
    tag = world
    obs = [f"{tag}-obs"]
    assert ids(search(client, "/Observation", *tagged(tag, ("_text", "zebrafish")))) == obs
    assert ids(search(client, "/Observation", *tagged(tag, ("_content", "zebrafish")))) == []
    assert ids(search(client, "/Observation", *tagged(tag, ("_content", "xylophone")))) == obs
    assert ids(search(client, "/Observation", *tagged(tag, ("_text", "xylophone")))) == []
    # codes, dates and system URIs are not content
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "male")))) == []
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "official")))) == []
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "1974-12-25")))) == []
    # identifier values and displays are
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "12345")))) == [
        f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "acme")))) == [
        f"{tag}-example"]


def test_or_and_and_search_expressions(client: httpx.Client, world: str) -> None:
    tag = world
    both = [f"{tag}-example", f"{tag}-plain"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "peter,quixote")))) == both
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "peter or quixote")))) == both
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "peter"),
                                                  ("_content", "quixote")))) == []
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "peter"),
                                                  ("_content", "chalmers")))) == [
        f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "male -peter")))) == []
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", "alonso -peter")))) == [
        f"{tag}-plain"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content", '"james peter"')))) == []


def test_missing(client: httpx.Client, world: str) -> None:
    tag = world
    assert ids(search(client, "/Patient", *tagged(tag, ("_text:missing", "true")))) == [
        f"{tag}-plain"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_text:missing", "false")))) == [
        f"{tag}-example"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_content:missing", "true")))) == []
    assert len(ids(search(client, "/Patient", *tagged(tag, ("_content:missing", "false"))))) == 2


def test_chain_has_and_system_search(client: httpx.Client, world: str) -> None:
    tag = world
    assert ids(search(client, "/Observation", *tagged(tag, ("subject:Patient._text", "peter"))
                      )) == [f"{tag}-obs"]
    assert ids(search(client, "/Patient", *tagged(tag, ("_has:Observation:subject:_content",
                                                        "xylophone")))) == [f"{tag}-example"]
    system = search(client, "", ("_type", "Patient,Observation"),
                    *tagged(tag, ("_content", "xylophone,quixote")))
    assert ids(system) == [f"{tag}-obs", f"{tag}-plain"]


def test_updates_replace_the_text(client: httpx.Client, tag: str) -> None:
    meta = {"tag": [{"system": "urn:text", "code": f"{tag}-u"}]}
    patient = {"resourceType": "Patient", "id": f"{tag}-upd", "meta": meta,
               "name": [{"family": "Ockham"}]}
    put(client, patient)
    where = ("_tag", f"urn:text|{tag}-u")
    assert ids(search(client, "/Patient", where, ("_content", "ockham"))) == [f"{tag}-upd"]
    put(client, {**patient, "name": [{"family": "Occam"}]})
    assert ids(search(client, "/Patient", where, ("_content", "ockham"))) == []
    assert ids(search(client, "/Patient", where, ("_content", "occam"))) == [f"{tag}-upd"]
    assert client.delete(f"/Patient/{tag}-upd").status_code in (200, 204)
    assert ids(search(client, "/Patient", where, ("_content", "occam"))) == []


def test_self_link_shows_what_was_applied(client: httpx.Client, world: str) -> None:
    tag = world
    bundle = search(client, "/Patient", *tagged(tag, ("_text", "peter"), ("family", "chalmers")))
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "_text=peter" in self_link and "family=chalmers" in self_link
    bundle = search(client, "/Patient", *tagged(tag, ("_content:missing", "false")))
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "_content%3Amissing=false" in self_link or "_content:missing=false" in self_link


@pytest.mark.parametrize("pairs, named", [
    ((("_query", "everything"),), "_query"),
    ((("_query", "x"), ("family", "chalmers")), "_query"),
    ((("_text:exact", "peter"),), "_text"),
    ((("_content:not", "peter"),), "_content"),
    ((("_content:contains", "pet"),), "_content"),
    ((("_text", "!!!"),), "_text"),
    ((("_text:missing", "maybe"),), "_text"),
])
def test_refused(client: httpx.Client, pairs: tuple[tuple[str, str], ...],
                 named: str) -> None:
    response = client.get("/Patient", params=list(pairs))
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert named in outcome["issue"][0]["diagnostics"]
