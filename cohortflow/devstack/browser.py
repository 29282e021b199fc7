"""The headless browser the dashboard test drives: Debian's Chromium and its chromedriver.

``python -m cohortflow.devstack.browser`` (the Makefile's ``browser`` target, which ``make test``
runs) installs them when missing; :func:`require_chromium` tells a test what to run, or why not.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cohortflow.devstack.process import ensure_debian_packages
from cohortflow.errors import CohortflowError, StackError

PACKAGES = ("chromium", "chromium-driver")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def ensure_chromium() -> tuple[Path, Path]:
    """Install Chromium and chromedriver from Debian's packages unless both are there; their paths."""
    ensure_debian_packages(PACKAGES, [str(CHROMIUM), str(CHROMEDRIVER)])
    return require_chromium()


def require_chromium() -> tuple[Path, Path]:
    """The browser and driver binaries, or a :class:`StackError` saying how to install them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise StackError(f"{', '.join(missing)} missing: run `make browser` (apt-get install {' '.join(PACKAGES)})")
    return CHROMIUM, CHROMEDRIVER


def headless_chrome(width: int = 1440, height: int = 1000) -> Any:  # selenium's WebDriver
    """A Selenium WebDriver on Debian's headless Chromium (selenium is a test extra: imported here only)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--disable-extensions", "--no-first-run", "--lang=en-US", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(driver)), options=options)


# The dashboard has loaded: every section has answered, the followed badge too (or was refused).
_LOADED = """
const board = document.getElementById("board");
const states = [...board.querySelectorAll("section[data-state]")].map((s) => s.dataset.state);
return !board.hidden && !states.includes("loading") && ["ok", "forbidden"].includes(
  document.getElementById("badge").dataset.state);
"""


def capture(url: str, token: str, out: Path, *, width: int = 1440, settle: float = 2.0, timeout: float = 30) -> Path:
    """A PNG of the whole dashboard served at ``url`` as ``token`` sees it, written to ``out``."""
    driver = headless_chrome(width, 1000)
    try:
        driver.get(f"{url}/")
        driver.execute_script("sessionStorage.clear()")
        driver.get(f"{url}/")
        driver.find_element("id", "token-input").send_keys(token)
        driver.find_element("id", "token-submit").click()
        deadline = time.monotonic() + timeout
        while not driver.execute_script(_LOADED):
            if time.monotonic() > deadline:
                raise StackError(f"the dashboard at {url} did not load within {timeout:g} s")
            time.sleep(0.1)
        time.sleep(settle)  # a refresh or two, the badge's highlight faded
        # The whole page in one picture: the window grown to the page's height (plus the window's own frame).
        height, frame = driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
        driver.set_window_size(width, height + frame)
        time.sleep(0.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


def main() -> None:
    try:
        browser, driver = ensure_chromium()
    except CohortflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(f"headless browser ready: {browser}, {driver}", file=sys.stderr)


if __name__ == "__main__":
    main()
