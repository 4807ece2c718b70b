"""The [entra] table and the jobs' Entra ids: strict parsing, the secret from the environment."""
from __future__ import annotations

import pytest

from dashboard.settings import EntraSettings, load_settings
from tests.test_settings import _error, write  # noqa: F401 - `write` is the config-file fixture

ENABLED = '[entra]\nenabled = true\ntenant = "contoso.onmicrosoft.com"\nclient_id = "app-id"\n'


def test_it_leaves_the_pull_off_by_default(write):
    entra = load_settings(write(""), env={}).entra

    assert entra == EntraSettings() and entra.enabled is False
    assert entra.graph_base == "https://graph.microsoft.com/v1.0" and entra.interval_minutes == 10


def test_it_reads_the_entra_table_and_the_secret_from_the_environment(write):
    path = write(ENABLED + 'graph_base = "https://graph.microsoft.us/v1.0"\npage_size = 500\noverlap_minutes = 0\n')

    entra = load_settings(path, env={"DASHBOARD_ENTRA_CLIENT_SECRET": "from-env"}).entra

    assert (entra.tenant, entra.client_id, entra.client_secret) == ("contoso.onmicrosoft.com", "app-id", "from-env")
    assert (entra.graph_base, entra.page_size, entra.overlap_minutes) == ("https://graph.microsoft.us/v1.0", 500, 0)


def test_the_environment_overrides_the_secret_in_the_file(write):
    path = write(ENABLED + 'client_secret = "in-file"\n')

    assert load_settings(path, env={"DASHBOARD_ENTRA_CLIENT_SECRET": "from-env"}).entra.client_secret == "from-env"
    assert load_settings(path, env={}).entra.client_secret == "in-file"


def test_it_never_shows_the_client_secret_in_its_repr(write):
    settings = load_settings(write(ENABLED), env={"DASHBOARD_ENTRA_CLIENT_SECRET": "hunter2"})

    assert "hunter2" not in repr(settings) and "hunter2" not in repr(settings.entra)


def test_it_refuses_an_enabled_pull_without_its_secret(write):
    message = _error(write(ENABLED))

    assert "entra.client_secret" in message and "DASHBOARD_ENTRA_CLIENT_SECRET" in message


def test_it_refuses_an_enabled_pull_without_a_tenant(write):
    assert "entra.tenant" in _error(write("[entra]\nenabled = true\nclient_id = \"x\"\nclient_secret = \"y\"\n"))


def test_a_disabled_pull_needs_no_credentials(write):
    assert load_settings(write("[entra]\nenabled = false\n"), env={}).entra.missing == [
        "entra.tenant", "entra.client_id", "entra.client_secret"]


@pytest.mark.parametrize(("text", "expected"), [
    ("[entra]\nsecret = \"x\"\n", "unknown configuration key 'entra.secret'"),
    ("[entra]\nenabled = \"yes\"\n", "entra.enabled must be true or false"),
    ("[entra]\ninterval_minutes = 0\n", "entra.interval_minutes must be a positive integer"),
    ("[entra]\nmax_attempts = 0\n", "entra.max_attempts must be a positive integer"),
    ("[entra]\ntimeout_seconds = 1.5\n", "entra.timeout_seconds must be an integer"),
    ("[entra]\npage_size = -1\n", "entra.page_size must be zero or a positive integer"),
    ("[entra]\noverlap_minutes = -5\n", "entra.overlap_minutes must be zero or a positive integer"),
    ("[entra]\ninitial_lookback_days = 0\n", "entra.initial_lookback_days must be a positive integer"),
    ("[entra]\ntenant = 5\n", "entra.tenant must be a string"),
    ("[entra]\ngraph_base = \"http://graph.example.com/v1.0\"\n", "entra.graph_base must be an https:// URL"),
    ("[entra]\nlogin_base = \"login.microsoftonline.com\"\n", "entra.login_base must be an https:// URL"),
    ("entra = 1\n", "entra must be a table ([entra])"),
    ("[[jobs]]\nname = \"a\"\nentra_job_id = 5\n", "jobs[0].entra_job_id must be a string"),
    ("[[jobs]]\nname = \"a\"\nentra_sp = \"x\"\n", "unknown configuration key 'jobs[0].entra_sp'"),
])
def test_it_names_the_bad_key(write, text, expected):
    assert expected in _error(write(text))


@pytest.mark.parametrize("base", ["http://127.0.0.1:8080", "http://localhost/v1.0", "http://[::1]:5000",
                                  "https://graph.microsoft.com/beta"])
def test_it_allows_plain_http_only_to_this_machine(write, base):
    assert load_settings(write(f'[entra]\ngraph_base = "{base}"\n'), env={}).entra.graph_base == base


def test_it_reads_the_jobs_entra_ids(write):
    path = write('[[jobs]]\nname = "uniflow-prod"\nentra_service_principal_id = "sp-1"\nentra_job_id = "uniFLOWOnline.t.j"\n')

    job = load_settings(path, env={}).jobs[0]

    assert (job.entra_service_principal_id, job.entra_job_id) == ("sp-1", "uniFLOWOnline.t.j")
