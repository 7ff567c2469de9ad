"""The narrative check (txt-1, txt-2): what an XHTML div may hold."""

from __future__ import annotations

import pytest

from fhir_server.validation.invariants.xhtml import check_narrative

NS = 'xmlns="http://www.w3.org/1999/xhtml"'


def _div(inner: str, attributes: str = "") -> str:
    return f"<div {NS}{attributes}>{inner}</div>"


@pytest.mark.parametrize("div", [
    _div("<p>Hello <b>world</b></p>"),
    _div('<table border="1"><tr><td colspan="2">x</td></tr></table>'),
    _div('<a href="https://hl7.org/fhir">spec</a> <a name="top">top</a>'),
    _div('<img src="#photo" alt="photo"/>'),  # an image is content enough
    _div('<img src="https://images.example.org/x.png"/>'),  # images may be external
    _div('<img src="data:image/png;base64,iVBORw0KGgo="/>'),
    _div('<span style="color: red" class="c" id="i" lang="en" xml:lang="en">x</span>'),
    _div("<!-- a comment --><p>x</p>"),
    '<xhtml:div xmlns:xhtml="http://www.w3.org/1999/xhtml">x</xhtml:div>',
    _div("x &#160; &lt;y&gt;"),
])
def test_allowed(div: str) -> None:
    assert check_narrative(div) == []


@pytest.mark.parametrize(("div", "message"), [
    (_div("<p>x</p><script>alert(1)</script>"), "may not hold a <script> element"),
    ("<div>plain</div>", "must be in the XHTML namespace"),
    (f"<p {NS}>x</p>", "must be one XHTML div, not {http://www.w3.org/1999/xhtml}p"),
    (_div('<p onclick="alert(1)">x</p>'), "event attribute (p.onclick)"),
    (_div('<img src="x.png" onerror="alert(1)"/>'), "event attribute (img.onerror)"),
    (_div('<a href="javascript:alert(1)">x</a>'), "javascript: URL (a.href)"),
    (_div('<a href=" JavaScript:alert(1)">x</a>'), "URL (a.href)"),
    (_div('<a href="data:text/html,x">x</a>'), "data: URL (a.href)"),
    (_div('<p style="background: url(https://evil.example/t.gif)">x</p>'),
     "styles may not load or run anything"),
    (_div('<iframe src="https://evil.example/"/>x'), "may not hold a <iframe> element"),
    (_div("<form><input/></form>x"), "may not hold a <form> element"),
    (_div('<link rel="stylesheet" href="https://x/s.css"/>x'), "<link> element"),
    (_div("<object/>x"), "<object> element"),
    (_div('<p src="x.png">x</p>'), "may not hold the attribute p.src"),
    (_div('<span xmlns:svg="http://www.w3.org/2000/svg"><svg:svg/></span>x'),
     "element outside XHTML"),
    (_div("<p>unclosed</div>"), "not well-formed XHTML"),
    (_div("&nbsp;"), "not well-formed XHTML"),  # HTML entities are not XML
], ids=lambda v: v if len(str(v)) < 40 else None)
def test_refused(div: str, message: str) -> None:
    problems = check_narrative(div)
    assert {key for key, _ in problems} == {"txt-1"}
    assert message in problems[0][1]


def test_no_content_is_txt_2() -> None:
    assert check_narrative(_div("  <p> </p> ")) == [
        ("txt-2", "the narrative has no non-whitespace content")]


def test_a_doctype_or_entity_is_not_expanded() -> None:
    evil = '<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + _div("&e;")
    assert check_narrative(evil) == [
        ("txt-1", "the narrative may not hold a DOCTYPE or entity declaration")]
