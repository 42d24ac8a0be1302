"""Headless Chromium for the UI test: Debian's ``chromium`` and ``chromium-driver``, driven by selenium.

Selenium because its actions are real keyboard and mouse input (ActionChains over the W3C protocol) with
waiting and element lookup built in; CDP by hand would reimplement those. The driver and the browser are
named explicitly and ``SE_OFFLINE`` is set, so selenium-manager never looks for (or downloads) anything.

Form helpers follow prefect-ui-library's markup: every property is a ``.schema-form-property`` whose header
label is its title (``"... (Optional)"`` when not required; a block's edit form labels it the same way, in
its own markup); a select is a ``.p-select`` that takes typed
text and Enter; text is a ``textarea``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.infra.services import ServiceUnavailable

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A property's own title: a run form's (SchemaFormProperty), or a block form's (SchemaFormInput, the edit page).
LABEL = (
    "./div[contains(@class,'p-label__header')]//span[contains(@class,'schema-form-property__label')]"
    " | ./div[contains(@class,'schema-form-input')]/div[contains(@class,'p-label__header')]/label/span"
)


@contextmanager
def chromium() -> Iterator[object]:
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            raise ServiceUnavailable(f"{tool} is missing: run `make test-deps` (Debian chromium, chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never reach out
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


class Form:
    """One run form on the page, filled with real input events."""

    def __init__(self, driver, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        self.driver, self.timeout = driver, timeout

    def _wait(self, find):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                found = find()
                if found is not None:
                    return found
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError("form element did not appear")
            time.sleep(0.2)

    def field(self, *titles: str):  # type: ignore[no-untyped-def]
        """The property reached by titles from the top (each one a direct child of the one before)."""
        from selenium.webdriver.common.by import By

        def find():  # type: ignore[no-untyped-def]
            scope = None
            for title in titles:
                root = scope or self.driver
                match = None
                for candidate in root.find_elements(By.CSS_SELECTOR, ".schema-form-property"):
                    parent = self.driver.execute_script(
                        "return arguments[0].parentElement.closest('.schema-form-property')", candidate
                    )
                    if parent != scope:
                        continue
                    own = candidate.find_element(By.XPATH, LABEL).text.removesuffix(" (Optional)")
                    if own == title:
                        match = candidate
                        break
                if match is None:
                    raise LookupError(titles)
                scope = match
            return scope

        return self._wait(find)

    def _click(self, element) -> None:  # type: ignore[no-untyped-def]
        from selenium.webdriver.common.action_chains import ActionChains

        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        ActionChains(self.driver).move_to_element(element).click().perform()

    def type(self, text: str, *titles: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        def box():  # type: ignore[no-untyped-def]
            return self.field(*titles).find_element(By.TAG_NAME, "textarea")

        # The form re-renders while it validates; on a busy machine a keystroke can land in the old
        # element and be lost. Type, read the value back, and retype the whole value (Ctrl+A) if it differs.
        value = None
        for _ in range(3):
            self._click(box())
            ActionChains(self.driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(
                text
            ).perform()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):  # a stale element while the form re-renders: read again
                    value = box().get_attribute("value")
                if value == text:
                    return
                time.sleep(0.2)
        raise AssertionError(f"form field {' / '.join(titles)} holds {value!r} after typing {text!r}")

    def choose(self, value: str, *titles: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self._click(self.field(*titles).find_element(By.CSS_SELECTOR, ".p-select"))
        ActionChains(self.driver).send_keys(value).send_keys(Keys.ENTER).perform()

    def button(self, text: str, *titles: str) -> None:
        from selenium.webdriver.common.by import By

        root = self.field(*titles) if titles else self.driver
        self._click(self._wait(lambda: root.find_element(By.XPATH, f".//button[normalize-space()='{text}']")))

    def reference(self, kind: str, connector: str, path: str, *titles: str) -> None:
        self.choose(kind, *titles, "Kind")
        self.type(connector, *titles, "Connector")
        self.type(path, *titles, "Path")
