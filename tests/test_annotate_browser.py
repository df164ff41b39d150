"""The annotation page in a real headless browser (Debian's Chromium driven by Selenium): an
annotator types a name and clicks through one whole batch; every click lands in the database as
the answer that was clicked. Skips, saying why, where Chromium or its driver is not installed
(.ci/run installs both)."""

import shutil
import threading

import pytest

from mmal_jax.annotation import serve
from test_annotate_serve import BUDGET
from test_annotate_serve import asked  # pylint: disable=unused-import  # a fixture
from test_annotate_serve import project  # pylint: disable=unused-import  # a fixture
from test_annotate_serve import recorded

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
from selenium.common.exceptions import WebDriverException  # pylint: disable=g-import-not-at-top
from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
from selenium.webdriver.support import expected_conditions  # pylint: disable=g-import-not-at-top
from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# The query a fully loaded page shows (null on the closing page); "loading" while it loads.
_SHOWN_QID = (
    "if (document.readyState !== 'complete') return 'loading';"
    "const q = document.querySelector('[name=qid]'); return q ? q.value : null;"
)


@pytest.fixture
def browser():
  if not (CHROMIUM and DRIVER):
    pytest.skip(
        "no headless browser: install Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver; .ci/run does)"
    )
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    options.add_argument(arg)
  # An explicit driver path: Selenium Manager would otherwise try to download one.
  driver = webdriver.Chrome(
      service=webdriver.ChromeService(executable_path=DRIVER), options=options
  )
  driver.set_page_load_timeout(120)
  yield driver
  driver.quit()


def test_an_annotator_clicks_through_a_batch(project, browser):
  directory, answers = project
  server = serve.make_server(directory, "127.0.0.1", 0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
    browser.find_element(By.NAME, "annotator").send_keys("ada")
    browser.find_element(By.TAG_NAME, "button").click()
    clicked = {}
    for _ in range(BUDGET + 1):
      WebDriverWait(browser, 120).until(
          expected_conditions.presence_of_element_located((By.TAG_NAME, "h1"))
      )
      qids = browser.find_elements(By.NAME, "qid")
      if not qids:
        break
      qid = qids[0].get_attribute("value")
      assert qid not in clicked  # a query answered is never shown again
      buttons = {b.get_attribute("value"): b for b in browser.find_elements(By.NAME, "partner")}
      assert "none" in buttons and len(buttons) >= 2, browser.page_source[:500]
      # The true partner where the model suggested it, else "none of these".
      choice = answers[qid] if answers[qid] in buttons else "none"
      buttons[choice].click()
      # Wait for the next page by what it shows, not by `staleness_of`: Chromium 150's driver
      # can answer a query on a node of the page being replaced with a generic error instead
      # of "stale element", which failed CI once.
      WebDriverWait(browser, 120, ignored_exceptions=(WebDriverException,)).until(
          lambda b, qid=qid: b.execute_script(_SHOWN_QID) not in (qid, "loading")
      )
      clicked[qid] = choice
    assert "Nothing left to annotate" in browser.find_element(By.TAG_NAME, "h1").text
    assert len(clicked) == BUDGET
    assert recorded(directory) == clicked
  finally:
    server.shutdown()
    server.server_close()
