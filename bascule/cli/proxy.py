"""bascule proxy-config: a reverse proxy's configuration."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from bascule.proxies import PROXIES


def _host_port(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"give HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


@click.command("proxy-config", short_help="Write a reverse proxy's configuration.")
@click.argument("proxy", type=click.Choice(PROXIES))
@click.option(
    "--listen", required=True, callback=_host_port, help="HOST:PORT the proxy listens on."
)
@click.option("--upstream", required=True, help="The application's URL, http://HOST:PORT.")
@click.option("--bascule", "bascule_url", required=True, help="Bascule's URL, http://HOST:PORT.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 30),
    default=1.0,
    show_default=True,
    help="Seconds Bascule has to answer; past them the request goes through (fail open).",
)
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory to write the configuration into.",
)
def proxy_config(
    proxy: str,
    listen: tuple[str, int],
    upstream: str,
    bascule_url: str,
    timeout: float,
    output_dir: Path,
) -> None:
    """Write into --output-dir the whole configuration of PROXY (nginx, caddy, haproxy,
    traefik or envoy) in front of the application at --upstream, asking the Bascule at
    --bascule about every request; print, last, the command that runs it."""
    from bascule.proxies import Recipe, write

    recipe = Recipe(listen[0], listen[1], upstream.rstrip("/"), bascule_url.rstrip("/"), timeout)
    try:
        command = write(proxy, recipe, output_dir)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in sorted(output_dir.iterdir()):
        click.echo(f"wrote {path}")
    click.echo(shlex.join(command))
