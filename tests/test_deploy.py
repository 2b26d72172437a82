"""deploy/'s image and unit, for real: the image built and run with podman, the systemd
unit booted under systemd in systemd-nspawn (tests/test_manifests.py checks the
Kubernetes manifests)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy import image
from deploy.image import TAG, Podman
from tests.conftest import PG_ENV, fresh_postgres_database, postgres_server
from tests.serving import free_port, wait_answering
from tests.waiting import until

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
HEALTH = "/rest/v1/admin/health"
STATE = "/var/lib/bascule"
UID = 10001  # the image's user (deploy/Containerfile)
GENERATED = re.compile(r"Created the user 'admin' with the password (\S+) ")
FOLLOWER = "bascule-proxy-follow@.service"
# In one pytest worker, which builds the image once.
pytestmark = [pytest.mark.image, pytest.mark.xdist_group("image")]


def redacted(output: str) -> str:
    """Output fit for a failure message: without the generated password."""
    return GENERATED.sub("Created the user 'admin' with the password [redacted] ", output)


def wait_healthy(url: str, output: Callable[[], str]) -> None:
    """Wait until ``url`` answers health 200; fail with ``output()``, redacted."""
    wait_answering(url + HEALTH, lambda: redacted(output()), timeout=90, what="Bascule")


@dataclass
class Built:
    context: Path  # the bases and the wheels the image was built from


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with a store of this session's own, removed at its end."""
    store = Podman(tmp_path_factory.mktemp("podman"))
    yield store
    store.remove()


@pytest.fixture(scope="session")
def built(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The image, built once a session (its Debian bases come from deploy/image.py's
    cache, made by mmdebstrap when their inputs changed)."""
    context = tmp_path_factory.mktemp("context")
    image.build(podman, context)
    return Built(context)


@contextmanager
def container(podman: Podman, *options: str) -> Iterator[str]:
    """Run the image (``bascule serve``) until the block ends; its name."""
    name = f"bascule-test-{uuid.uuid4().hex[:8]}"
    podman("run", "--detach", f"--name={name}", *options, TAG)
    try:
        yield name
    finally:
        podman("rm", "--force", "--time=5", name, check=False)


def logs(podman: Podman, name: str) -> str:
    result = podman("logs", name, check=False)
    return result.stdout + result.stderr


# -- the image ----------------------------------------------------------------------------


def test_the_image_serves_as_a_user_with_its_state_in_a_volume(podman: Podman, built: Built):
    volume = f"bascule-state-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", volume)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A read-only root, as Kubernetes' manifests ask: the volume is all it writes to.
    options = (f"--publish=127.0.0.1:{port}:8088", f"--volume={volume}:{STATE}", "--read-only")
    with container(podman, *options) as name:
        wait_healthy(url, lambda: logs(podman, name))
        generated = GENERATED.search(logs(podman, name))
        assert generated, "the first start printed no generated password"
        admin = ("admin", generated.group(1))
        assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        assert podman("healthcheck", "run", name, check=False).returncode == 0

        assert httpx.post(f"{url}/rest/v1/maintenance", auth=admin).status_code == 201
        assert httpx.get(f"{url}/").status_code == 503
        # The command line, from the same image, on the same state.
        cli = ("run", "--rm", f"--volume={volume}:{STATE}", TAG, "bascule")
        status = json.loads(podman(*cli, "maintenance", "status", "--json").stdout)
        assert status["userTriggered"] is True
        assert "up to date" in podman(*cli, "db", "upgrade").stdout

        started = time.monotonic()
        podman("stop", "--time=30", name, timeout=60)
        assert time.monotonic() - started < 10
        # Killed by its SIGTERM once shut down (143); after the 30 s, SIGKILL's 137.
        assert podman("inspect", "--format={{.State.ExitCode}}", name).stdout.strip() == "143"
        assert "Finished server process" in logs(podman, name)

    with container(podman, *options) as name:  # a new container on the same volume
        wait_healthy(url, lambda: logs(podman, name))
        assert not GENERATED.search(logs(podman, name))
        state = httpx.get(f"{url}/rest/v1/maintenance", auth=admin).json()["data"]
        assert state["userTriggered"] is True
        assert httpx.delete(f"{url}/rest/v1/maintenance", auth=admin).status_code == 200
        assert httpx.get(f"{url}/").status_code == 404


def test_the_image_runs_any_bascule_command(podman: Podman, built: Built):
    result = podman("run", "--rm", TAG, "bascule", "maintenance", "status")
    assert result.stdout == "Maintenance is off.\n"


def test_the_image_runs_on_postgresql(podman: Podman, built: Built):
    server = postgres_server()
    if not server:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
    with fresh_postgres_database(server) as url:
        # On this machine's network, where the server listens on loopback.
        run = ("run", "--rm", "--network=host", f"--env=BASCULE_DATABASE_URL={url}", TAG)
        assert "Created the schema" in podman(*run, "bascule", "db", "upgrade").stdout
        assert podman(*run, "bascule", "maintenance", "status").stdout == "Maintenance is off.\n"


def test_the_image_is_built_again_with_the_same_layers(podman: Podman, built: Built):
    def layers() -> list[str]:
        return json.loads(
            podman("image", "inspect", "--format={{json .RootFS.Layers}}", TAG).stdout
        )

    first = layers()
    image.build(podman, built.context)  # the same bases and wheels
    assert layers() == first


def test_the_image_weighs_what_the_docs_say(podman: Podman, built: Built):
    stated = re.search(r"The image weighs (\d+) MB", DEPLOYMENT)
    assert stated, "docs/deployment.md does not say what the image weighs"
    size = int(podman("image", "inspect", "--format={{.Size}}", TAG).stdout) / 1e6
    # Debian's updates move it by a few MB: a tenth more or less is news.
    assert abs(size - int(stated.group(1))) < int(stated.group(1)) / 10, f"{size:.0f} MB"


# -- the systemd unit ---------------------------------------------------------------------


def install(podman: Podman, root: Path, port: int) -> None:
    """Debian with systemd in ``root``, and Bascule installed in it as docs/deployment.md
    says: the image's /opt/bascule, the unit, its user, its environment file (two workers
    on ``port``)."""
    root.mkdir()
    tar = ["tar", "--extract", f"--directory={root}", f"--file={image.base('systemd')}"]
    subprocess.run(tar, check=True, timeout=300)
    made = podman("create", TAG).stdout.strip()
    try:
        podman("cp", f"{made}:/opt/bascule", root / "opt")
    finally:
        podman("rm", made)
    unit = DEPLOY / "systemd"
    for name in ("bascule.service", FOLLOWER):
        shutil.copy(unit / name, root / "etc/systemd/system" / name)
    (root / "etc/sysusers.d").mkdir(exist_ok=True)
    shutil.copy(unit / "bascule.sysusers", root / "etc/sysusers.d/bascule.conf")
    (root / "etc/bascule").mkdir()
    env = root / "etc/bascule/bascule.env"
    env.write_text(f"{(unit / 'bascule.env').read_text()}BASCULE_PORT={port}\nBASCULE_WORKERS=2\n")
    env.chmod(0o600)
    for command in (
        ["systemd-sysusers", f"--root={root}"],
        ["systemctl", f"--root={root}", "enable", "bascule.service"],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=60)


def init_of(nspawn: int) -> int | None:
    """The machine's systemd, once systemd-nspawn (``nspawn``) has started it."""
    for child in Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split():
        if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
            return int(child)
    return None


Inside = Callable[..., subprocess.CompletedProcess[str]]


@contextmanager
def booted(root: Path, log: Path) -> Iterator[Inside]:
    """Boot ``root`` with systemd-nspawn, on this machine's network, until the block ends;
    a function that runs a command in it."""
    nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=passive"]
    with log.open("w") as out:
        machine = subprocess.Popen(
            [*nspawn, "--boot", f"--directory={root}"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        until(lambda: init_of(machine.pid) or machine.poll() is not None, 30, "the boot")
        leader = init_of(machine.pid)
        assert leader, f"systemd-nspawn exited:\n{log.read_text()}"

        def inside(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
            enter = ["nsenter", f"--target={leader}", "--all"]
            return subprocess.run(
                [*enter, *argv], capture_output=True, text=True, timeout=timeout, check=False
            )

        yield inside
    finally:
        machine.send_signal(signal.SIGTERM)  # systemd-nspawn shuts the machine down
        try:
            machine.wait(timeout=60)
        except subprocess.TimeoutExpired:
            machine.kill()
            machine.wait(timeout=10)


def check_follower(inside: Inside, url: str, password: str) -> None:
    """The follower's unit, as docs/deployment.md says: a recipe's switch in step with
    the Bascule it names, under systemd's sandbox."""
    recipe, instance = "/etc/bascule/proxy", "bascule-proxy-follow@etc-bascule-proxy.service"
    config = ["/opt/bascule/bin/bascule", "proxy-config", "haproxy", "--listen", "127.0.0.1:9"]
    config += ["--upstream", "http://127.0.0.1:9", "--bascule", url, "--output-dir", recipe]
    assert inside(*config).returncode == 0
    assert inside("systemctl", "start", instance).returncode == 0

    def switch() -> str:
        return inside("cat", f"{recipe}/switch.map").stdout.strip()

    until(lambda: switch() == "asks none", 30, "the switch of maintenance off")
    admin = ("admin", password)
    assert httpx.post(f"{url}/rest/v1/maintenance", auth=admin, timeout=10).status_code == 201
    until(lambda: switch() == "asks all", 10, "the switch of maintenance on")
    assert httpx.delete(f"{url}/rest/v1/maintenance", auth=admin, timeout=10).status_code == 200
    until(lambda: switch() == "asks none", 10, "the switch of maintenance off again")
    verify = inside("systemd-analyze", "verify", instance)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, ""), verify
    logged = inside("journalctl", f"--unit={instance}", "--no-pager", "--output=cat").stdout
    assert "haproxy asks Bascule about all requests" in logged, logged
    assert inside("systemctl", "stop", instance).returncode == 0


def test_the_unit_runs_under_systemd(podman: Podman, built: Built, tmp_path: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root = tmp_path / "machine"
    install(podman, root, port)
    try:
        with booted(root, tmp_path / "machine.log") as inside:

            def journal() -> str:
                return inside("journalctl", "--unit=bascule", "--no-pager", "--output=cat").stdout

            def unit() -> dict[str, str]:
                properties = "--property=ActiveState,Result,NRestarts,MainPID"
                shown = inside("systemctl", "show", properties, "bascule.service").stdout
                return dict(line.split("=", 1) for line in shown.splitlines())

            wait_healthy(url, journal)
            verify = inside("systemd-analyze", "verify", "bascule.service")
            assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
            security = inside("systemd-analyze", "security", "--no-pager", "bascule.service")
            measured = re.search(r"exposure level for bascule.service: (\d+\.\d+)", security.stdout)
            stated = re.search(r"rates its exposure (\d+\.\d+)", DEPLOYMENT)
            assert stated, "docs/deployment.md does not state the unit's exposure"
            assert measured and measured.group(1) == stated.group(1), security.stdout

            first = unit()["MainPID"]
            assert inside("stat", "--format=%U", f"/proc/{first}").stdout.strip() == "bascule"
            owner = inside("stat", "--format=%U %a", f"{STATE}/bascule.db").stdout.split()
            assert owner == ["bascule", "600"]
            generated = GENERATED.search(journal())
            assert generated, "the first start printed no generated password"
            check_follower(inside, url, generated.group(1))
            # The upgrade as documented, as the unit's user with its settings.
            documented = re.search(r"^systemd-run .*? db upgrade$", DEPLOYMENT, re.M | re.S)
            assert documented, "docs/deployment.md shows no upgrade under systemd"
            upgrade = documented.group(0).replace("\\\n", " ").replace("-0.2.0", "")
            migrated = inside(*shlex.split(upgrade))
            assert "The schema is up to date" in migrated.stdout, migrated.stderr

            inside("systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "bascule.service")
            until(lambda: unit()["NRestarts"] == "1", 30, "a restart")
            until(lambda: unit()["ActiveState"] == "active", 30, "the restarted unit")
            wait_healthy(url, journal)
            assert unit()["MainPID"] != first

            started = time.monotonic()
            assert inside("systemctl", "stop", "bascule.service").returncode == 0
            assert time.monotonic() - started < 30  # TimeoutStopSec, after which it kills
            after = unit()
            stopped = (after["ActiveState"], after["Result"])
            assert stopped == ("inactive", "success"), redacted(journal())
            assert "Finished server process" in journal()
    finally:
        shutil.rmtree(root, ignore_errors=True)
