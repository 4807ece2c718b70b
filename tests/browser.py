"""Headless Chromium for the browser tests (Debian's package, driven by Playwright).

Without Chromium a browser test is skipped on a developer machine and is an error in CI
(CI=true), so a missing browser never hides a failure there."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # screenshots, to look at


def require_chromium(*, module: bool = True) -> None:
    """Skip (the whole module, or this test) without Chromium; raise in CI."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI needs Chromium at {CHROMIUM} for the browser tests (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); runs in CI", allow_module_level=module)


@pytest.fixture(scope="module")
def browser() -> Iterator:  # type: ignore[type-arg]
    require_chromium(module=False)
    from playwright.sync_api import (
        sync_playwright,  # here: a module without browser tests need not load it
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


def sign_in_page(page, base: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Sign a Chromium page in the way a person does: the login form, then the overview."""
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
