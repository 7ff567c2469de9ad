"""The whole standalone launch as an app does it: the PyPI ``fhirclient`` builds the
authorization request (PKCE S256), headless chromium logs in, picks the patient and
consents on the real pages, ``fhirclient`` exchanges the code and reads the patient."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart, put
from tests.integration.auth.server.conftest import add_client, add_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.xdist_group("auth-server-browser"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs chromium and chromedriver (apt install chromium "
                              "chromium-driver)"),
]
selenium = pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
fhirclient = pytest.importorskip("fhirclient", reason="needs fhirclient (pip install "
                                                       "fhirclient)")


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<!DOCTYPE html><title>callback</title><p>done</p>")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def callback() -> Iterator[str]:
    """The app's redirect URI: a page served by the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/callback"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=390,844"):  # a phone's viewport
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def test_fhirclient_standalone_launch_in_chromium(
        smart: Smart, store: Store, system_client: httpx.Client, callback: str,
        driver: Any) -> None:
    from fhirclient import client
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    pid = f"b-{uuid.uuid4().hex[:12]}"
    put(system_client, {"resourceType": "Patient", "id": pid,
                        "name": [{"family": "Browserson", "given": ["Bea"]}]})
    scope = "openid fhirUser launch/patient patient/*.rs offline_access"
    app = add_client(store, "public", scope, redirect_uris=[callback])
    user = add_user(store, "Practitioner/selenium")
    fhir = client.FHIRClient(settings={"app_id": app.client_id, "api_base": smart.base,
                                       "redirect_uri": callback, "scope": scope})
    url = fhir.authorize_url
    assert url and "code_challenge=" in url and "aud=" in url

    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.presence_of_element_located((By.ID, "username")))
    assert driver.switch_to.active_element.get_attribute("id") == "username"  # autofocus
    driver.find_element(By.ID, "username").send_keys(user)
    password = driver.find_element(By.ID, "password")
    password.send_keys("correct horse")
    password.send_keys(Keys.ENTER)  # the keyboard submits the form

    search = wait.until(expected_conditions.presence_of_element_located(
        (By.ID, "patient_search")))
    search.send_keys("Browsers", Keys.ENTER)
    wait.until(expected_conditions.staleness_of(search))  # the filtered page replaced it
    radio = wait.until(expected_conditions.element_to_be_clickable(
        (By.CSS_SELECTOR, f'input[type=radio][value="{pid}"]')))
    radio.click()
    driver.find_element(By.XPATH, "//button[normalize-space()='Select patient']").click()

    allow = wait.until(expected_conditions.element_to_be_clickable((By.ID, "allow")))
    assert "patient/*.rs" in driver.page_source
    allow.click()
    wait.until(lambda d: d.current_url.startswith(callback))
    redirected = driver.current_url
    assert "code=" in redirected and "state=" in redirected

    fhir.handle_callback(redirected)
    assert fhir.ready
    context = fhir.launch_context
    assert context["patient"] == pid
    assert set(context["scope"].split()) == set(scope.split())
    keys = KeySet.import_key_set(httpx.get(f"{smart.root}/auth/jwks").json())
    id_token = jwt.decode(context["id_token"], keys).claims
    assert id_token["fhirUser"] == "Practitioner/selenium"
    assert id_token["aud"] == [app.client_id]
    patient = fhir.patient
    assert patient is not None and patient.id == pid
    assert patient.name[0].family == "Browserson"


def test_api_docs_authorize_button_signs_in_with_the_built_in_server(
        smart: Smart, store: Store, system_client: httpx.Client, driver: Any) -> None:
    """/api/docs: Authorize (authorization code + PKCE, the popup through the login and
    consent pages, back to /api/docs/oauth2-redirect), then a token that reads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    pid = f"d-{uuid.uuid4().hex[:12]}"
    put(system_client, {"resourceType": "Patient", "id": pid})
    app = add_client(store, "public", "openid fhirUser user/*.rs user/*.cruds",
                     redirect_uris=[f"{smart.root}/api/docs/oauth2-redirect"])
    user = add_user(store, "Practitioner/docs-reader")
    wait = WebDriverWait(driver, 20)
    driver.set_window_size(1200, 900)
    driver.get(f"{smart.root}/api/docs?doc=Patient")
    # the other test's login (a cookie on /auth) must not sign this one in
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    wait.until(expected_conditions.element_to_be_clickable(
        (By.CSS_SELECTOR, "button.authorize"))).click()
    wait.until(expected_conditions.presence_of_element_located(
        (By.ID, "client_id_authorizationCode"))).send_keys(app.client_id)
    main = driver.current_window_handle
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button.modal-btn.auth.authorize")
         if b.is_displayed()).click()
    wait.until(lambda d: len(d.window_handles) > 1)
    driver.switch_to.window(next(h for h in driver.window_handles if h != main))
    wait.until(expected_conditions.presence_of_element_located((By.ID, "username"))
               ).send_keys(user)
    password = driver.find_element(By.ID, "password")
    password.send_keys("correct horse")
    password.submit()
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "allow"))).click()
    wait.until(lambda d: len(d.window_handles) == 1)  # the redirect page closes itself
    driver.switch_to.window(main)
    token = wait.until(lambda d: d.execute_script(
        "var a = window.ui.getState().toJS().auth.authorized;"
        "return a && a.smart && a.smart.token && a.smart.token.access_token;"))
    answer = httpx.get(f"{smart.base}/Patient/{pid}", timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json()["id"] == pid
