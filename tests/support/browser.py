"""Headless Chromium from Debian's packages (``chromium``, ``chromium-driver``) driven by Selenium.

Nothing is downloaded: Selenium gets the system browser and driver by path, and the browser
runs with a throwaway profile and with its background network traffic switched off, so the
only host it talks to is the test server on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

T = TypeVar("T")
CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb")


def _which(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name) or (shutil.which(name, path="/usr/lib/chromium"))
        if found:
            return found
    raise RuntimeError(f"{names[0]} is not installed: apt-get install chromium chromium-driver "
                       "(make test does this through scripts/system_deps.sh)")


@contextmanager
def chromium(width: int = 1280, height: int = 860) -> Iterator[WebDriver]:
    """A Selenium WebDriver for a fresh headless Chromium; quits and removes its profile after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="mlxk-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = _which(CHROMIUM_NAMES)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(_which(DRIVER_NAMES)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(check: Callable[[], T], timeout: float = 30, what: str = "condition",
             interval: float = 0.05) -> T:
    """Polls ``check`` until it returns something truthy (exceptions count as not yet)."""
    import time

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # an element not there yet, a stale reference ...
            last = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" ({last})" if last else ""))
