"""Who gets which email: subscriptions, the job's recipients, [reports] recipients; the CLI."""
from __future__ import annotations

import pytest

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.notify.recipients import (
    SubscriptionError,
    recipients_for,
    subscribe,
    unsubscribe,
)


def addresses(settings, kind):  # type: ignore[no-untyped-def]
    return sorted((r.address, r.role) for r in recipients_for(db.session, get_job("uniflow-prod"), kind, settings))


def test_it_sends_failures_and_quarantine_to_the_jobs_recipients_and_reports_to_the_configured_ones(app, settings):
    assert addresses(settings, "failures") == [("idm-team@example.com", "admin")]
    assert addresses(settings, "quarantine") == [("idm-team@example.com", "admin")]
    assert addresses(settings, "reports") == [("reports@example.com", "admin")]


def test_it_lets_a_subscription_replace_the_default_of_the_same_address(app, settings):
    subscribe(db.session, get_job("uniflow-prod"), "idm-team@example.com", kinds=["reports"], role="support")

    assert addresses(settings, "failures") == []
    assert addresses(settings, "reports") == [("idm-team@example.com", "support"), ("reports@example.com", "admin")]


def test_it_forgets_an_unsubscribed_address(app, settings):
    job = get_job("uniflow-prod")
    subscribe(db.session, job, "x@example.com", kinds=["failures"], role="support")

    assert unsubscribe(db.session, job, "x@example.com")
    assert ("x@example.com", "support") not in addresses(settings, "failures")


@pytest.mark.parametrize(("address", "kinds", "role"), [("no-at-sign", ["failures"], "admin"),
                                                        ("a@example.com", ["sms"], "admin"),
                                                        ("a@example.com", ["failures"], "viewer")])
def test_it_refuses_a_bad_subscription(app, address, kinds, role):
    with pytest.raises(SubscriptionError):
        subscribe(db.session, get_job("uniflow-prod"), address, kinds=kinds, role=role)


def test_it_subscribes_and_lists_from_the_command_line(runner):
    added = runner.invoke(args=["notify", "subscribe", "--job", "uniflow-prod", "--to", "help@example.com",
                                "--kinds", "reports,digest", "--role", "support"])
    listed = runner.invoke(args=["notify", "list", "--job", "uniflow-prod"])
    bad = runner.invoke(args=["notify", "subscribe", "--job", "uniflow-prod", "--to", "x@example.com", "--kinds", "sms"])

    assert added.exit_code == 0, added.output
    assert "help@example.com\tdigest,reports\tsupport\t(subscription)" in listed.output
    assert "idm-team@example.com\tfailures,quarantine\tadmin\t(job)" in listed.output
    assert bad.exit_code == 2 and "kinds must be some of" in bad.output
