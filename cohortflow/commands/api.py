"""`cohortflow api` and `cohortflow tokens`."""

from __future__ import annotations

import click

from cohortflow.commands.context import Context, out, pass_context


@click.command()
@click.option("--host", default=None, help="Listen address [default: COHORTFLOW_API_HOST].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: COHORTFLOW_API_PORT].")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="uvicorn processes, each with its own socket on the port (SO_REUSEPORT).")
@pass_context
def api(ctx: Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the read API: views, badges (and their SSE streams), audit, freshness, /health, /metrics."""
    import uvicorn

    settings = ctx.settings
    if workers == 1:
        from cohortflow.api.app import create_app
        from cohortflow.processes import freeze_heap

        app = create_app(settings)
        freeze_heap()
        uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                    log_level="warning", access_log=False, loop="uvloop" if _has("uvloop") else "asyncio")
    else:
        from cohortflow.api.processes import serve

        serve(host or settings.api_host, port or settings.api_port, workers)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@click.group()
def tokens() -> None:
    """Bearer tokens of the read API (only a hash is stored).

    Scopes: views:read (every view), floor:<campus>/<floor> (that floor and its mentors),
    user:<id> (that user's counters), audit:read (the audit trail).
    """


@tokens.command("create")
@click.option("--name", required=True, help="A unique name for the token (who or what uses it).")
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope; repeat for several.")
@click.option("--quiet", is_flag=True, help="Print only the token (for scripts).")
@pass_context
def tokens_create(ctx: Context, name: str, scopes: tuple[str, ...], quiet: bool) -> None:
    """Create a token and print it: it is shown once, never stored."""
    from cohortflow.api import auth
    from cohortflow.stores.postgres import connect

    with connect(ctx.settings, autocommit=True) as conn:
        token = auth.create(conn, name, list(scopes))
    if quiet:
        click.echo(token)
    else:
        out.print(f"token [bold]{name}[/] ({', '.join(sorted(set(scopes)))}); keep it, it is not shown again:")
        click.echo(token)


@tokens.command("list")
@pass_context
def tokens_list(ctx: Context) -> None:
    """Every token: name, scopes, created, revoked."""
    from rich.table import Table

    from cohortflow.api import auth
    from cohortflow.stores.postgres import connect

    with connect(ctx.settings, autocommit=True) as conn:
        found = auth.listing(conn)
    table = Table("name", "scopes", "created", "revoked")
    for name, scopes, created, revoked in found:
        table.add_row(name, " ".join(scopes), f"{created:%Y-%m-%d %H:%M}",
                      f"{revoked:%Y-%m-%d %H:%M}" if revoked else "")
    out.print(table)


@tokens.command("revoke")
@click.argument("name")
@pass_context
def tokens_revoke(ctx: Context, name: str) -> None:
    """Revoke the token NAME (API processes stop accepting it within COHORTFLOW_API_TOKEN_CACHE_SECONDS)."""
    from cohortflow.api import auth
    from cohortflow.stores.postgres import connect

    with connect(ctx.settings, autocommit=True) as conn:
        auth.revoke(conn, name)
    out.print(f"revoked {name}")
