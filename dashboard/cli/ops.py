"""`flask ops`: the scraper token of /metrics and /healthz."""
from __future__ import annotations

import click

from dashboard.admin.scraper import make_token

ops_group = click.Group("ops", help="Operations: the token of the /metrics and /healthz scraper.")


@ops_group.command("token")
def token_command() -> None:
    """Make a scraper token: the token goes to the scraper (Prometheus' bearer token), its hash
    into [ops] scraper_token_hash (or DASHBOARD_SCRAPER_TOKEN_HASH). It is shown once."""
    token, digest = make_token()
    click.echo(f"token (give it to the scraper, shown once): {token}")
    click.echo("put this in the configuration ([ops] table), then restart the web workers:")
    click.echo(f'scraper_token_hash = "{digest}"')
