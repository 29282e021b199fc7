"""dev/services: start, stop and inspect the local Kafka, PostgreSQL and Redis.

Idempotent: a service that already answers at its ``COHORTFLOW_*`` address
is left alone (whoever started it), so running ``up`` twice changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cohortflow.devstack.kafka import Kafka
from cohortflow.devstack.postgres import Postgres
from cohortflow.devstack.redis import Redis
from cohortflow.errors import CohortflowError, StackError
from cohortflow.settings import load_settings

console = Console(stderr=True)
NAMES = ("kafka", "postgresql", "redis")


def services(stack: Path) -> dict[str, Kafka | Postgres | Redis]:
    stack = stack.resolve()  # servers run elsewhere: every path they get is absolute
    settings = load_settings()
    return {
        "kafka": Kafka(settings.kafka_bootstrap, stack),
        "postgresql": Postgres(settings.postgres_url, stack),
        "redis": Redis(settings.redis_connection_url, stack),
    }


def pick(stack: Path, names: tuple[str, ...]) -> list[Kafka | Postgres | Redis]:
    every = services(stack)
    return [every[n] for n in (names or NAMES)]


stack_option = click.option("--dir", "stack", type=click.Path(path_type=Path), default=Path(".stack"),
                            show_default=True, help="Where the services keep their binaries, data and logs.")
names_argument = click.argument("names", nargs=-1, type=click.Choice(NAMES))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run Kafka (KRaft), PostgreSQL and Redis locally, without Docker, for cohortflow."""


@cli.command()
@stack_option
@names_argument
def up(stack: Path, names: tuple[str, ...]) -> None:
    """Install what is missing and start every service that does not answer yet."""
    began = time.monotonic()
    chosen = pick(stack, names)
    started = []
    for svc in chosen:  # start all first: Kafka boots while PostgreSQL initialises
        if svc.answers():
            console.print(f"[green]{svc.name}[/] already answers at {svc.address}: nothing to start")
            continue
        if not svc.address.is_loopback:
            raise StackError(f"{svc.name} does not answer at {svc.address}, and dev/services only starts "
                             "services on loopback: fix the COHORTFLOW_* URL or start that service")
        console.print(f"[cyan]{svc.name}[/]: installing if missing, then starting on {svc.address}")
        svc.install()
        svc.start()
        started.append(svc)
    for svc in chosen:
        svc.wait_ready()
    done = ", ".join(s.name for s in started) or "nothing"
    console.print(f"[bold]started {done}[/] in {time.monotonic() - began:.1f} s; every service is ready")


@cli.command()
@stack_option
@names_argument
def down(stack: Path, names: tuple[str, ...]) -> None:
    """Stop the services dev/services started (never one somebody else runs)."""
    for svc in pick(stack, names):
        stopped = svc.stop()
        console.print(f"{svc.name}: {'stopped' if stopped else 'was not running from ' + str(stack)}")


@cli.command()
@stack_option
def status(stack: Path) -> None:
    """Show each service: state, address, version; exit 1 when one does not answer."""
    table = Table("service", "state", "address", "version")
    all_up = True
    for svc in pick(stack, ()):
        answers = svc.answers()
        all_up &= answers
        state = ("running (dev/services)" if svc.is_ours() else "answering (external)") if answers else "down"
        table.add_row(svc.name, state, str(svc.address), (svc.version() if answers else None) or "-")
    Console().print(table)
    sys.exit(0 if all_up else 1)


@cli.command()
@stack_option
@click.argument("name", type=click.Choice(NAMES))
@click.option("-n", "lines", default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "follow", is_flag=True, help="Keep printing new lines.")
def logs(stack: Path, name: str, lines: int, follow: bool) -> None:
    """Print the end of a service's log."""
    log = services(stack)[name].log
    if not log.exists():
        raise StackError(f"no log at {log}: {name} was never started by dev/services here")
    subprocess.run(["tail", f"-n{lines}", *(["-F"] if follow else []), str(log)], check=False)


@cli.command()
@stack_option
@names_argument
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(stack: Path, names: tuple[str, ...], yes: bool) -> None:
    """Stop the services and delete their data (Kafka's jars are kept)."""
    chosen = pick(stack, names)
    if not yes:
        click.confirm(f"delete the data of {', '.join(s.name for s in chosen)} under {stack}?", abort=True)
    for svc in chosen:
        svc.stop()
        data = getattr(svc, "data", None) or svc.home
        if data.exists():
            shutil.rmtree(data)
        console.print(f"{svc.name}: data deleted ({data})")


def main() -> None:
    try:
        cli(standalone_mode=True)
    except CohortflowError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
