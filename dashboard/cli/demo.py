"""`flask simulate` and `flask demo`: the simulator's logs and the demo data."""
from __future__ import annotations

import gzip
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import click
import orjson

from dashboard import runtime
from dashboard.db import db
from dashboard.demo.truth import REALITIES, SimConfig
from dashboard.ingest.scim import options_for


@click.command("simulate")
@click.option("--users", type=click.IntRange(min=1), default=200)
@click.option("--cycles", type=click.IntRange(min=1), default=6)
@click.option("--seed", type=int, default=1)
@click.option("--job", "job_name", default="uniflow-demo")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Log file (default stdout; .gz compresses).")
@click.option("--truth", type=click.Path(dir_okay=False), default=None, help="Ground truth JSON file.")
@click.option("--max-lines", type=click.IntRange(min=1), default=None)
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.03)
@click.option("--auth-outage", "auth_outage", multiple=True, type=int, help="Cycle index answering 401 (repeatable).")
@click.option("--lookup-404", "lookup_404", multiple=True, type=int, help="Cycle index whose lookups answer 404.")
@click.option("--deletion-storm", type=int, default=None, help="Cycle index with a mass disable.")
@click.option("--silent-after", type=int, default=None, help="No traffic after this cycle index.")
@click.option("--cycle-ids/--no-cycle-ids", default=False, help="Write cycle_id on each line.")
@click.option("--reality", "realities", multiple=True,
              type=click.Choice(["rename", "variant", "collision", "recreate", "scope", "unmatched", "disorder", "all"]),
              help="What real tenants do that the plain run does not (repeatable; 'all': every one): renames, "
                   "Unicode/case variants of a userName, two people on one userName, re-creation in the target, "
                   "out of scope and back, lookups that find nothing, lines late, twice or out of order.")
@click.option("--entra-pages", type=click.Path(file_okay=False), default=None,
              help="Also write Entra's provisioning logs of the same run as Graph page files in this folder.")
def simulate_command(users: int, cycles: int, seed: int, job_name: str, out: str | None, truth: str | None,
                     max_lines: int | None, failure_rate: float, auth_outage: tuple[int, ...],
                     lookup_404: tuple[int, ...], deletion_storm: int | None, silent_after: int | None,
                     cycle_ids: bool, realities: tuple[str, ...], entra_pages: str | None) -> None:
    """Write a realistic v1 log of Entra provisioning uniFLOW Online (deterministic per seed)."""
    # the simulator: imported by the commands that use it only
    from dashboard.demo.entra_pages import write_simulated_pages
    from dashboard.demo.simulate import write_log  # (likewise)

    chosen = REALITIES if "all" in realities else tuple(dict.fromkeys(realities))
    config = SimConfig(
        users=users, cycles=cycles, seed=seed, job=job_name, max_lines=max_lines,
        failure_rate=failure_rate, auth_outage_cycles=auth_outage, lookup_404_cycles=lookup_404,
        deletion_storm_cycle=deletion_storm, silent_after_cycle=silent_after, with_cycle_ids=cycle_ids,
        realities=chosen, record_events=entra_pages is not None,
    )
    with ExitStack() as stack:
        if out is None:
            sink: IO[bytes] = sys.stdout.buffer
        elif out.endswith(".gz"):
            sink = stack.enter_context(gzip.open(out, "wb", compresslevel=5))
        else:
            sink = stack.enter_context(open(out, "wb"))
        ground_truth = write_log(config, sink)
    if truth:
        Path(truth).write_bytes(orjson.dumps(ground_truth.to_dict(), option=orjson.OPT_INDENT_2))
    if entra_pages:
        Path(entra_pages).mkdir(parents=True, exist_ok=True)
        written = write_simulated_pages(Path(entra_pages), ground_truth)
        click.echo(f"{len(written)} Graph page file(s) of Entra's provisioning logs in {entra_pages}", err=True)


@click.command("demo")
@click.option("--users", type=click.IntRange(min=1), default=300)
@click.option("--cycles", type=click.IntRange(min=1), default=12)
def demo_command(users: int, cycles: int) -> None:
    """Load demo data (simulated jobs) into an empty database; does nothing otherwise."""
    if not runtime.settings().app.demo_data:
        click.echo("demo: app.demo_data is false; nothing loaded")
        return

    # the loader (and the simulator): imported by this command only
    from dashboard.demo.loader import load_demo

    loaded = load_demo(db.engine, users=users, cycles=cycles, options=options_for(runtime.settings()))
    click.echo(loaded)
