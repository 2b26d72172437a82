"""bascule proxy-config: a reverse proxy's configuration; bascule proxy-follow: the
follower that keeps its switch in step."""

from __future__ import annotations

import logging
import shlex
import signal
from pathlib import Path

import click

from bascule.proxies import PROXIES


def _host_port(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"give HOST:PORT, a port from 1 to 65535, not {value!r}")
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
    --bascule about the requests its switch names (every one until the follower says
    otherwise); print, last, the commands to run, one per line: the follower first (in
    the background), the proxy last."""
    from bascule.proxies import Recipe, follow_command, write

    recipe = Recipe(listen[0], listen[1], upstream.rstrip("/"), bascule_url.rstrip("/"), timeout)
    try:
        command = write(proxy, recipe, output_dir)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in sorted(output_dir.iterdir()):
        if not path.name.startswith("."):
            click.echo(f"wrote {path}")
    click.echo(shlex.join(follow_command(output_dir)) + " &")
    click.echo(shlex.join(command))


@click.command("proxy-follow", short_help="Keep a proxy's switch in step with Bascule.")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
def proxy_follow(directory: Path) -> None:
    """Keep the switch of the proxy configured in DIRECTORY (by proxy-config) in step with
    the Bascule it asks: it asks about no request while maintenance is off, about those
    that change something while it is read-only, about every one while it is on. Needs
    no credentials; runs until stopped (SIGTERM, SIGINT). When Bascule cannot be
    reached, the switch keeps its last state."""
    from bascule.proxies.follow import Follower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per watch
    try:
        follower = Follower(directory.resolve())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    def stop(*_: object) -> None:
        # At once, the watch under way dropped; a change of the switch under way is
        # finished first (the loop ends after it): nothing is set after a stop.
        follower.stopping.set()
        if not follower.switching:
            raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    follower.run()
