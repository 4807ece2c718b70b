"""load_settings: strict TOML, named keys in every error, environment overrides."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.settings import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    JobSettings,
    Settings,
    load_settings,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


@pytest.fixture
def write(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def _error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {})
    return str(caught.value)


# --- the file -----------------------------------------------------------------------------


def test_it_uses_the_defaults_when_the_default_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DEFAULT_CONFIG_PATH is relative and does not exist here
    assert not Path(DEFAULT_CONFIG_PATH).exists()

    assert load_settings(env={}) == Settings()


def test_it_refuses_an_explicit_file_that_is_missing(tmp_path):
    missing = tmp_path / "nowhere.toml"

    message = _error(missing)

    assert str(missing) in message


def test_it_refuses_a_missing_file_named_by_dashboard_config(tmp_path):
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"DASHBOARD_CONFIG": str(missing)})


def test_it_reads_the_file_named_by_dashboard_config(write):
    path = write('[ingest]\ndefault_job = "uniflow-prod"\n')

    assert load_settings(env={"DASHBOARD_CONFIG": str(path)}).ingest.default_job == "uniflow-prod"


def test_it_reads_an_empty_file_as_the_defaults(write):
    assert load_settings(write(""), env={}) == Settings()


def test_it_reads_values_from_the_file(write):
    path = write(
        '[ingest]\nbatch_size = 500\nredact_attributes = ["pin"]\n'
        '[scheduler]\nenabled = false\n'
        '[quarantine]\nfailure_proportion = 0.25\n'
        '[[jobs]]\nname = "uniflow-prod"\nscope_size = 300\n[jobs.quarantine]\nmin_failures = 50\n'
    )

    settings = load_settings(path, env={})

    assert settings.ingest.batch_size == 500
    assert settings.ingest.redact_attributes == ("pin",)
    assert settings.scheduler.enabled is False
    assert settings.quarantine.failure_proportion == 0.25
    assert settings.jobs == (JobSettings(name="uniflow-prod", scope_size=300, quarantine={"min_failures": 50}),)


def test_it_refuses_a_file_that_is_not_toml(write):
    message = _error(write("[ingest\nbatch_size = 1\n"))

    assert "not valid TOML" in message


# --- bad keys and values: each error names its key -------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("bogus = 1\n", "bogus"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("[ingest]\nbogus = 1\n", "ingest.bogus"),
        ('[[jobs]]\nname = "a"\nbogus = 1\n', "jobs[0].bogus"),
        ('[[jobs]]\nname = "a"\n[jobs.quarantine]\nbogus = 1\n', "jobs[0].quarantine.bogus"),
    ],
)
def test_it_refuses_an_unknown_key(write, toml, key):
    message = _error(write(toml))

    assert f"unknown configuration key '{key}'" in message


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[ingest]\nbatch_size = "x"\n', "ingest.batch_size"),
        ("[ingest]\nbatch_size = 0\n", "ingest.batch_size"),
        ("[ingest]\nbatch_size = -5\n", "ingest.batch_size"),
        ("[ingest]\nbatch_size = 1.5\n", "ingest.batch_size"),
        ("[ingest]\nbatch_size = true\n", "ingest.batch_size"),
        ('[scheduler]\nenabled = "yes"\n', "scheduler.enabled"),
        ("[scheduler]\nenabled = 1\n", "scheduler.enabled"),
        ("[ingest]\nredact_attributes = [1]\n", "ingest.redact_attributes"),
        ('[ingest]\nredact_attributes = "pin"\n', "ingest.redact_attributes"),
        ('[ingest]\nredact_attributes = [""]\n', "ingest.redact_attributes"),
        ('[app]\nlog_level = "LOUD"\n', "app.log_level"),
        ('[database]\nurl = "instance/dashboard.db"\n', "database.url"),
        ("[cycles]\ngap_minutes = 0\n", "cycles.gap_minutes"),
        ("[reports]\ninterval_minutes = 0\n", "reports.interval_minutes"),
        ("[quarantine]\nfailure_proportion = 1.5\n", "quarantine.failure_proportion"),
        ("[quarantine]\ncredential_share = 0\n", "quarantine.credential_share"),
        ('[smtp]\nsecurity = "ssl"\n', "smtp.security"),
        ("[smtp]\nport = 70000\n", "smtp.port"),
        ('[smtp]\nfrom_address = "nobody"\n', "smtp.from_address"),
        ("[notifications]\ndigest_hour = 24\n", "notifications.digest_hour"),
        ("[retention]\ndays = 0\n", "retention.days"),
        ("[retention]\nbatch_rows = 0\n", "retention.batch_rows"),
        ("[scheduler]\nrenew_seconds = 20\n", "scheduler.renew_seconds"),
        ("[scheduler]\nlease_seconds = 0\n", "scheduler.lease_seconds"),
        ("[scheduler]\ntick_seconds = 0\n", "scheduler.tick_seconds"),
        ('[ops]\nscraper_token_hash = "not-a-hash"\n', "ops.scraper_token_hash"),
        ("[ops]\noutbox_max_age_minutes = 0\n", "ops.outbox_max_age_minutes"),
        ("ingest = 1\n", "ingest"),
        ("jobs = 1\n", "jobs"),
        ('[[jobs]]\nname = "a"\nscope_size = 0\n', "jobs[0].scope_size"),
        ('[[jobs]]\nname = "a"\n[jobs.quarantine]\nmin_failures = 0\n', "jobs[0].quarantine.min_failures"),
    ],
)
def test_it_refuses_a_bad_value_naming_its_key(write, toml, key):
    message = _error(write(toml))

    assert re.search(rf"(^|\W){re.escape(key)}(\W|$)", message), message


@pytest.mark.parametrize("level", ["DEBUG", "info", "Warning", "ERROR"])
def test_it_accepts_a_log_level_in_any_case(write, level):
    settings = load_settings(write(f'[app]\nlog_level = "{level}"\n'), env={})

    assert settings.app.log_level.upper() == level.upper()


def test_it_takes_the_scraper_token_hash_from_the_environment(write):
    digest = "a" * 64

    settings = load_settings(write("[ops]\noutbox_max_age_minutes = 5\n"), env={"DASHBOARD_SCRAPER_TOKEN_HASH": digest})

    assert (settings.ops.scraper_token_hash, settings.ops.outbox_max_age_minutes) == (digest, 5)
    assert digest not in repr(settings)  # never in a log line that prints the settings


def test_it_requires_a_name_for_each_job(write):
    message = _error(write('[[jobs]]\ndisplay_name = "uniFLOW"\n'))

    assert message == "jobs[0].name is required"


@pytest.mark.parametrize("name", ["", "uniflow prod", "uniflow/prod"])
def test_it_refuses_a_job_name_with_other_characters(write, name):
    message = _error(write(f'[[jobs]]\nname = "{name}"\n'))

    assert "jobs[0].name" in message


def test_it_refuses_two_jobs_with_the_same_name(write):
    message = _error(write('[[jobs]]\nname = "uniflow-prod"\n[[jobs]]\nname = "uniflow-prod"\n'))

    assert message.startswith("jobs")
    assert "same name" in message


# --- the environment ----------------------------------------------------------------------


def test_it_takes_the_database_url_from_the_environment(write):
    path = write('[database]\nurl = "sqlite:///file.db"\n')

    settings = load_settings(path, env={"DATABASE_URL": "postgresql://u:p@127.0.0.1/dashboard"})

    assert settings.database.url == "postgresql://u:p@127.0.0.1/dashboard"


def test_it_takes_the_secret_key_from_the_environment(write):
    path = write('[app]\nsecret_key = "from-file"\nbase_url = "https://dash.example.com"\n')

    settings = load_settings(path, env={"DASHBOARD_SECRET_KEY": "from-env"})

    assert (settings.app.secret_key, settings.app.base_url) == ("from-env", "https://dash.example.com")


def test_it_takes_the_smtp_password_from_the_environment(write):
    settings = load_settings(write('[smtp]\nhost = "smtp.example.com"\n'), env={"DASHBOARD_SMTP_PASSWORD": "pw"})

    assert (settings.smtp.host, settings.smtp.password) == ("smtp.example.com", "pw")


def test_it_takes_the_log_level_from_the_environment(write):
    settings = load_settings(write('[app]\nlog_level = "ERROR"\n'), env={"DASHBOARD_LOG_LEVEL": "debug"})

    assert settings.app.log_level == "DEBUG"


def test_it_refuses_a_bad_log_level_from_the_environment(write):
    message = _error(write(""), env={"DASHBOARD_LOG_LEVEL": "loud"})

    assert "DASHBOARD_LOG_LEVEL" in message


def test_it_ignores_empty_environment_variables(write):
    path = write('[database]\nurl = "sqlite:///file.db"\n')

    settings = load_settings(path, env={"DATABASE_URL": "", "DASHBOARD_SECRET_KEY": ""})

    assert (settings.database.url, settings.app.secret_key) == ("sqlite:///file.db", "")


def test_it_never_shows_the_smtp_password_in_its_repr(write):
    settings = load_settings(write(""), env={"DASHBOARD_SMTP_PASSWORD": "hunter2"})

    assert "hunter2" not in repr(settings)


# --- config.example.toml: documentation that must stay loadable -------------------------------


def _example_text() -> str:
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing: it documents every configuration key (STYLE.md section 3)"
    return EXAMPLE.read_text(encoding="utf-8")


def test_it_loads_config_example_toml():
    _example_text()

    assert isinstance(load_settings(EXAMPLE, env={}), Settings)


def test_it_shows_the_defaults_in_config_example_toml():
    # The example says "every key below shows its default".
    _example_text()

    assert load_settings(EXAMPLE, env={}) == Settings()


def test_it_loads_the_commented_job_example_of_config_example_toml(tmp_path):
    text = _example_text()
    start = text.index("# [[jobs]]")  # the job example is commented out; it must work uncommented
    head, example = text[:start], text[start:]
    uncommented = re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", example)
    path = tmp_path / "config.toml"
    path.write_text(head + uncommented, encoding="utf-8")

    settings = load_settings(path, env={})

    assert [job.name for job in settings.jobs] == ["uniflow-prod"]
    assert settings.jobs[0].quarantine == {"min_failures": 50}


def test_it_documents_every_key_in_config_example_toml():
    text = _example_text()
    tables = {name: f.default_factory for name, f in Settings.__dataclass_fields__.items() if name not in ("jobs", "testing")}

    missing = [
        f"{table}.{key}"
        for table, factory in tables.items()
        for key in factory().__dataclass_fields__
        if f"[{table}]" not in text or not re.search(rf"(?m)^#? ?{key} = ", text)
    ]

    assert missing == []
