"""The administration pages in headless Chromium, at 1280 and 390 px: an admin adds a job, creates
an ingest token (shown once) and revokes it; a viewer and a support account get 403 naming the role.

Screenshots land in test-artifacts/admin-*.png for a person to look at.
"""
from __future__ import annotations

import re

import pytest

from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import add_job
from tests.browser import sign_in_page
from tests.notify.helpers import after_cycle, cycle_lines, ingest
from tests.web.test_browser import PASSWORD, browser, shot, site  # noqa: F401  (fixtures)

WIDTHS = {"wide": 1280, "phone": 390}


def open_as(browser, base: str, email: str, width: int):  # type: ignore[no-untyped-def]  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in_page(page, base, email, PASSWORD)
    return context, page, problems


def fits(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


@pytest.mark.parametrize("size", list(WIDTHS))
def test_an_admin_adds_a_job_creates_a_token_once_and_revokes_it(browser, site, size):  # noqa: F811
    base, _clock = site
    add_account("admin@example.com", "admin", PASSWORD)
    context, page, problems = open_as(browser, base, "admin@example.com", WIDTHS[size])

    page.click("header.top >> text=Admin")
    page.wait_for_url(base + "/admin/accounts")
    assert fits(page)
    shot(page, f"admin-accounts-{size}")

    page.goto(base + "/admin/jobs")
    page.fill("input[name=name]", "uniflow-emea")
    page.fill("input[name=display_name]", "uniFLOW EMEA")
    page.fill("input[name=scope_size]", "3000")
    page.click("text=Add job")
    page.wait_for_url(base + "/admin/jobs/uniflow-emea")
    assert "Added job uniflow-emea." in page.inner_text(".flash")

    page.fill("textarea[name=thresholds]", '{"min_failure": 50}')
    page.click("text=Save")
    assert "unknown threshold 'min_failure'" in page.inner_text(".flash.error")

    page.click("text=Create a token")
    token = page.inner_text("#new-token")
    assert re.fullmatch(r"pmd_[\w-]{40,}", token)
    assert fits(page)
    shot(page, f"admin-token-{size}")

    page.goto(base + "/admin/jobs/uniflow-emea")  # shown once: not on the page again
    assert token not in page.content()
    row = page.locator(f'tr[data-prefix="{token[:12]}"]')
    assert "live" in row.inner_text() and "never" in row.inner_text()
    row.locator("text=Revoke").click()
    assert f"Token {token[:12]}… revoked" in page.inner_text(".flash")
    assert "revoked" in page.locator(f'tr[data-prefix="{token[:12]}"]').inner_text()
    assert fits(page)
    shot(page, f"admin-job-{size}")

    page.goto(base + "/admin/audit")
    assert [a.inner_text() for a in page.locator("table.audit code").all()] == ["token.revoke", "token.create", "job.add"]
    assert token not in page.content()
    assert fits(page)
    shot(page, f"admin-audit-{size}")

    page.goto(base + "/admin/email")
    assert fits(page)
    shot(page, f"admin-email-{size}")
    context.close()
    assert problems == []


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_a_lower_role_is_told_which_role_the_admin_pages_need(browser, site, role):  # noqa: F811
    base, _clock = site
    email = "support@example.com" if role == "support" else "viewer@example.com"
    if role == "viewer":
        add_account(email, "viewer", PASSWORD)
    context, page, _ = open_as(browser, base, email, 390)

    assert page.locator("header.top >> text=Admin").count() == 0
    response = page.goto(base + "/admin/jobs")

    assert response.status == 403
    assert f"This page needs the admin role; you are signed in as {role}." in page.inner_text("main")
    assert fits(page)
    shot(page, f"admin-403-{role}")
    context.close()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_support_sees_the_summary_strip_and_finds_a_person_across_jobs(browser, site, settings, size):  # noqa: F811
    base, clock = site
    add_job("emea", display_name="uniFLOW EMEA")
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(0, job="emea"), job="emea")
    clock.now = after_cycle(0)
    context, page, problems = open_as(browser, base, "support@example.com", WIDTHS[size])

    assert page.inner_text("p.summary") == "2 healthy"
    assert fits(page)
    shot(page, f"overview-strip-{size}")
    page.fill("input[name=q]", "USER2@contoso.com")
    page.click("form.search button")
    page.wait_for_url(re.compile(r".*/search\?q=.*"))
    assert "2 people matching" in page.inner_text("main")
    assert fits(page)
    shot(page, f"search-{size}")

    page.locator("table.results a").first.click()
    page.wait_for_url(re.compile(r".*/jobs/[^/]+/users/.+"))
    assert "user2@contoso.com" in page.inner_text("main")
    context.close()
    assert problems == []
