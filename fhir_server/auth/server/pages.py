"""The HTML of the authorization pages: login, patient picker, consent, errors.

Plain HTML and one stylesheet served by the app (no script, no CDN); usable on a
phone (viewport, fluid layout) and from the keyboard (labels, natural focus order,
visible focus rings).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from fhir_server.auth.scopes import resource_scopes

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1b1f24;background:#f3f5f8}
main{max-width:32rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;
box-shadow:0 1px 4px rgba(0,0,0,.12)}
@media (max-width:36rem){main{margin:0;border-radius:0;min-height:100vh}}
h1{font-size:1.4rem;margin:0 0 1rem}
p.who{color:#4a5360;margin-top:0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password],input[type=search]{width:100%;padding:.6rem;
font:inherit;border:1px solid #8a94a3;border-radius:.3rem}
button{font:inherit;padding:.6rem 1.2rem;border-radius:.3rem;border:1px solid #1d4ed8;
background:#1d4ed8;color:#fff;cursor:pointer;margin:.75rem .5rem 0 0}
button.secondary{background:#fff;color:#1d4ed8}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
ul.scopes{padding-left:1.2rem}
ul.scopes code{font-size:.85em;color:#4a5360}
fieldset{border:0;padding:0;margin:0}
.patient{display:flex;gap:.5rem;align-items:flex-start;padding:.5rem 0;
border-bottom:1px solid #e5e8ec}
.patient label{margin:0;font-weight:400}
.error{background:#fdecec;border:1px solid #e5a3a3;padding:.6rem;border-radius:.3rem}
.actions{display:flex;flex-wrap:wrap}
"""

_CONTEXTS = {"patient": "about the selected patient", "user": "you can access",
             "system": "on this server"}
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_WORDS = {
    "openid": "Know who you are (sign in with OpenID Connect)",
    "fhirUser": "Know which FHIR record represents you",
    "profile": "See your user name",
    "launch": "Use the context the EHR launched it with",
    "launch/patient": "Know which patient is selected",
    "launch/encounter": "Know which encounter is selected",
    "offline_access": "Keep access when you are not using it (until revoked)",
    "online_access": "Keep access while you stay logged in",
}


def describe_scope(scope: str) -> str:
    """A person-readable sentence for one scope."""
    if scope in _WORDS:
        return _WORDS[scope]
    parsed = resource_scopes(scope)
    if not parsed:
        return "Other permission"
    s = parsed[0]
    verbs = [v for k, v in _VERBS.items() if k in s.permissions]
    what = "all data" if s.resource_type is None else f"{s.resource_type} resources"
    where = " (restricted)" if s.query else ""
    return f"{', '.join(verbs).capitalize()} {what} {_CONTEXTS[s.context]}{where}"


def page(title: str, body: str) -> str:
    """A complete page."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title>"
        "<link rel=\"stylesheet\" href=\"/auth/style.css\"></head>"
        f"<body><main>{body}</main></body></html>\n")


def _hidden(params: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                   for k, v in params)


def login_page(params: Sequence[tuple[str, str]], csrf: str, client_name: str,
               error: str | None = None) -> str:
    """The login form."""
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return page("Log in", (
        f"<h1>Log in</h1><p class=\"who\">to continue to <strong>{escape(client_name)}"
        f"</strong></p>{alert}"
        '<form method="post" action="/auth/authorize">'
        f'{_hidden(params)}<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<input type="hidden" name="action" value="login">'
        '<label for="username">User name</label>'
        '<input type="text" id="username" name="username" autocomplete="username" '
        'autocapitalize="none" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        'autocomplete="current-password" required>'
        '<div class="actions"><button type="submit">Log in</button></div></form>'))


def _patient_label(content: dict[str, Any]) -> str:
    found = content.get("name")
    names: list[Any] = found if isinstance(found, list) else []
    label = ""
    for name in names:
        if not isinstance(name, dict):
            continue
        raw = name.get("given")
        given: list[Any] = raw if isinstance(raw, list) else []
        label = str(name.get("text") or " ".join(
            [*(str(g) for g in given), str(name.get("family") or "")]).strip())
        if label:
            break
    extra = ", ".join(str(content[k]) for k in ("gender", "birthDate") if content.get(k))
    return f"{label or '(no name)'}" + (f" ({extra})" if extra else "")


def picker_page(params: Sequence[tuple[str, str]], csrf: str, client_name: str,
                patients: Sequence[tuple[str, dict[str, Any]]], query: str) -> str:
    """The patient picker (standalone launch with ``launch/patient``)."""
    rows = "".join(
        f'<div class="patient"><input type="radio" name="patient" id="p{n}" '
        f'value="{escape(pid)}" required{" checked" if n == 0 else ""}>'
        f'<label for="p{n}">{escape(_patient_label(content))}'
        f' <code>Patient/{escape(pid)}</code></label></div>'
        for n, (pid, content) in enumerate(patients))
    listing = (
        '<form method="post" action="/auth/authorize">'
        f'{_hidden(params)}<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<input type="hidden" name="action" value="pick">'
        f'<fieldset><legend>Patients</legend>{rows}</fieldset>'
        '<div class="actions"><button type="submit">Select patient</button></div></form>'
        if patients else '<p role="status">No patient matches.</p>')
    return page("Select a patient", (
        f"<h1>Select a patient</h1><p class=\"who\">for <strong>{escape(client_name)}"
        "</strong></p>"
        '<form method="get" action="/auth/authorize" role="search">'
        f'{_hidden(params)}<label for="patient_search">Search by name</label>'
        f'<input type="search" id="patient_search" name="patient_search" '
        f'value="{escape(query)}"><div class="actions"><button type="submit" '
        'class="secondary">Search</button></div></form>' + listing))


def consent_page(params: Sequence[tuple[str, str]], csrf: str, client_name: str,
                 username: str, scopes: Sequence[str], patient: str | None) -> str:
    """The consent page: what the app asks for, Allow or Deny."""
    items = "".join(f"<li>{escape(describe_scope(s))} <code>{escape(s)}</code></li>"
                    for s in scopes)
    about = (f"<p>Patient: <code>Patient/{escape(patient)}</code></p>" if patient else "")
    return page("Allow access?", (
        f"<h1>Allow <strong>{escape(client_name)}</strong> access?</h1>"
        f"<p class=\"who\">Logged in as {escape(username)}</p>{about}"
        f"<p>The app asks to:</p><ul class=\"scopes\">{items}</ul>"
        '<form method="post" action="/auth/authorize">'
        f'{_hidden(params)}<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<input type="hidden" name="action" value="consent">'
        '<div class="actions"><button type="submit" name="decision" value="allow" '
        'id="allow">Allow</button><button type="submit" name="decision" value="deny" '
        'class="secondary" id="deny">Deny</button></div></form>'))


def error_page(title: str, message: str) -> str:
    """An error that cannot be sent back to the client (no valid redirect URI)."""
    return page(title, f'<h1>{escape(title)}</h1><p class="error" role="alert">'
                       f'{escape(message)}</p>')
