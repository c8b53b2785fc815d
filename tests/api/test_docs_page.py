"""The interactive docs page and cross-origin calls, in a real headless Chromium.

Debian's `chromium` and `chromium-driver` (scripts/install-browser.sh, run by `make
setup`) driven by Selenium. The browser may resolve no host but 127.0.0.1, so a page
that needed anything online (a CDN, Swagger UI's validator) would fail here.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.api.conftest import MAX_INSTANCES, Server, copy_registry, start_api
from tickml.api import openapi, sample
from tickml.config import Settings
from tickml.loader import LoadedModel

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 60  # the machine is shared: a cold Swagger UI render can take a while

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium that can reach 127.0.0.1 only."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make setup` "
                    "(scripts/install-browser.sh installs Debian's chromium and driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,2000", "--disable-gpu",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: webdriver.Chrome, condition) -> object:
    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def open_docs(browser: webdriver.Chrome, server: Server) -> list[WebElement]:
    """Load `/docs` and wait until Swagger UI has rendered the operations."""
    browser.get_log("browser")  # what earlier pages logged is not this page's
    browser.get(server.url + "/docs")
    return wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))


def test_the_docs_page_lists_every_operation_from_local_files_only(
        browser: webdriver.Chrome, server: Server) -> None:
    blocks = open_docs(browser, server)
    listed = [(block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
               block.find_element(By.CSS_SELECTOR, ".opblock-summary-path")
               .get_attribute("data-path")) for block in blocks]
    document = openapi.document(MAX_INSTANCES)
    expected = [(method.upper(), path) for path, item in document["paths"].items()
                for method in item if method != "parameters"]
    assert listed == expected
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith(
        openapi.TITLE)
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert f"{server.url}/docs/swagger-ui-bundle.js" in loaded
    assert all(url.startswith(server.url + "/") for url in loaded), loaded
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


@pytest.mark.parametrize("example", ["transaction", "positional"])
def test_try_it_out_on_predict_returns_the_models_prediction(
        browser: webdriver.Chrome, server: Server, model: LoadedModel, example: str) -> None:
    open_docs(browser, server)
    block = browser.find_element(By.ID, "operations-tickml-post_predict")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    Select(wait(browser, lambda _: block.find_element(
        By.CSS_SELECTOR, ".examples-select select"))).select_by_value(example)
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    sent = json.loads(wait(browser, lambda _: block.find_element(
        By.CSS_SELECTOR, "textarea.body-param__text")).get_attribute("value"))
    assert ("features" in sent) == (example == "positional")
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait(browser, lambda _: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"))
    assert status.text == "200"
    body = json.loads(block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text)
    (prediction,) = body["predictions"]
    assert prediction["probability"] == model.predict_proba(sample.matrix())[0]
    assert body["model"]["version"] == model.ref.version


class _Page(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A page served from another origin (another port) than the API's."""
    directory = tmp_path_factory.mktemp("page")
    (directory / "index.html").write_text("<!doctype html><title>another site</title>")
    handler = functools.partial(_Page, directory=str(directory))
    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{page.server_address[1]}"
    finally:
        page.shutdown()
        page.server_close()


@pytest.fixture(scope="module")
def cors_server(small_project: Settings, other_origin: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real API that allows the other origin's pages."""
    directory: Path = tmp_path_factory.mktemp("cors")
    registry = copy_registry(small_project, directory / "models")
    service, server = start_api(registry, directory, ready_path="/ready",
                                api_cors_origins=other_origin)
    try:
        yield server
    finally:
        service.stop()


FETCH_PREDICT = """
const [url, features, done] = arguments;
fetch(url + "/predict", {method: "POST", headers: {"Content-Type": "application/json"},
                         body: JSON.stringify({features: features})})
  .then(r => r.json()).then(body => done({body: body}), e => done({blocked: String(e)}));
"""


def test_a_page_on_a_listed_origin_can_call_the_api(
        browser: webdriver.Chrome, other_origin: str, cors_server: Server,
        model: LoadedModel) -> None:
    browser.get(other_origin + "/index.html")
    outcome = browser.execute_async_script(FETCH_PREDICT, cors_server.url,
                                           list(sample.FEATURES.values()))
    assert "body" in outcome, outcome
    (prediction,) = outcome["body"]["predictions"]
    assert prediction["probability"] == model.predict_proba(sample.matrix())[0]


def test_by_default_the_browser_keeps_the_api_from_other_origins(
        browser: webdriver.Chrome, other_origin: str, server: Server) -> None:
    browser.get(other_origin + "/index.html")
    outcome = browser.execute_async_script(FETCH_PREDICT, server.url,
                                           list(sample.FEATURES.values()))
    assert outcome == {"blocked": "TypeError: Failed to fetch"}
