"""Build Bascule's container image with podman, from Debian's packages and the project's
wheels: no container registry is needed (`make image` runs this file).

The Debian root file systems are made by mmdebstrap from the mirrors apt uses here, and
kept in a cache named after their inputs (the options, mmdebstrap's version, and the
mirrors' signed Release files): the same inputs give the same bytes, so a cached one is
reused until the mirror changes. The wheels are built by pip on this machine, with its
settings; the image installs them offline. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CACHE = ROOT / "out" / "image" / "cache"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TAG = f"bascule:{VERSION}"
SUITE = "bookworm"
# What each root file system holds besides Debian's essential packages: the image's, the
# stage that installs the wheels, and the one the tests boot the systemd unit in.
BASES = {
    "runtime": ["python3", "tini", "ca-certificates"],
    "build": ["python3", "python3-pip", "binutils"],
    "systemd": ["python3", "ca-certificates", "systemd", "systemd-sysv", "dbus"],
}
# Documentation and translations are no use in a container; the copyright files stay.
EXCLUDED = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
INCLUDED = ["/usr/share/doc/*/copyright"]
# Used where apt here names no mirror for the suite.
DEFAULT_SOURCES = [
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
]
TIMEOUT = 900  # seconds for one step: a cold mirror download, a build


def debian_sources() -> list[str]:
    """The suite's mirrors as apt here knows them (its updates and security too), as
    one-line sources."""
    listed = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(COMPONENT)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout.split()
    suites = {SUITE, f"{SUITE}-updates", f"{SUITE}-security"}
    found = {
        f"deb {uri} {release} main"
        for uri, release, component in zip(listed[::3], listed[1::3], listed[2::3], strict=True)
        if release in suites and component == "main"
    }
    return sorted(found) or DEFAULT_SOURCES


def release_file(source: str) -> bytes:
    """The signed Release file of a one-line source: it names every package it serves."""
    _, uri, suite, _ = source.split(" ", 3)
    url = f"{uri.rstrip('/')}/dists/{suite}/InRelease"
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (apt's own URI)
        data: bytes = answer.read()
    return data


def release_time(release: bytes) -> int:
    """The time a Release file was made, in seconds since the epoch."""
    for line in release.decode("utf-8", "replace").splitlines():
        if line.startswith("Date:"):
            return int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())
    raise ValueError("a Release file without a Date")


def mmdebstrap(packages: list[str], output: str, sources: list[str]) -> list[str]:
    """The command that writes a root file system with ``packages`` to ``output``, a tar."""
    return [
        "mmdebstrap",
        "--quiet",
        "--format=tar",
        "--variant=essential",  # no apt: nothing installs packages in a running container
        f"--include={','.join(packages)}",
        # /usr merged by mmdebstrap itself, rather than by usrmerge (and Perl with it)
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        # copied from this machine; podman and systemd-nspawn provide their own
        '--customize-hook=rm "$1"/etc/resolv.conf "$1"/etc/hostname',
        *(f"--dpkgopt=path-exclude={path}" for path in EXCLUDED),
        *(f"--dpkgopt=path-include={path}" for path in INCLUDED),
        SUITE,
        output,
        *sources,
    ]


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the cache's lock: two test workers, or `make image` beside the tests, build
    a base once."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base(name: str, cache: Path = CACHE) -> Path:
    """The root file system ``name`` of BASES, as a tar: from the cache when its inputs
    have not changed, else made by mmdebstrap (about a minute)."""
    sources = debian_sources()
    releases = [release_file(source) for source in sources]
    version = subprocess.run(
        ["mmdebstrap", "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    command = mmdebstrap(BASES[name], "OUTPUT", sources)
    digest = hashlib.sha256(json.dumps([command, version]).encode())
    for release in releases:
        digest.update(hashlib.sha256(release).digest())
    path = cache / f"{name}-{digest.hexdigest()[:16]}.tar"
    with locked(cache):
        if path.exists():
            return path
        partial = path.with_name(path.name + ".partial")
        # Every file's time is clamped to the newest mirror's: the same bytes on every run.
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(max(map(release_time, releases)))}
        run(mmdebstrap(BASES[name], str(partial), sources), env=env)
        for old in cache.glob(f"{name}-*.tar"):
            old.unlink()
        partial.rename(path)
    return path


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a build step; fail with its output."""
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=TIMEOUT, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed:\n{result.stdout}{result.stderr}")
    return result


def wheels(directory: Path) -> None:
    """Bascule's wheel and those of everything it needs, built or fetched by pip here."""
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(directory), str(ROOT)])


class Podman:
    """podman with the project's containers.conf and a store of its own under ``home``,
    which nothing else uses: no image or container leaks in or out."""

    def __init__(self, home: Path):
        self.home = home
        # podman refuses a runroot path longer than 50 characters.
        self.run = Path(tempfile.mkdtemp(prefix="bascule-podman-"))
        self.env = {**os.environ, "CONTAINERS_CONF": str(DEPLOY / "containers.conf")}
        self.argv = [
            "podman",
            f"--root={home / 'root'}",
            f"--runroot={self.run / 'run'}",
            f"--tmpdir={self.run / 'tmp'}",
        ]

    def __call__(
        self, *args: str | Path, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one podman command, bounded in time; its output (failing with it)."""
        argv = [*self.argv, *map(str, args)]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {args[0]} failed:\n{result.stdout}{result.stderr}")
        return result

    def remove(self) -> None:
        """Remove every container, image and volume of the store, and the store."""
        self("system", "reset", "--force", timeout=300, check=False)
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.run, ignore_errors=True)


def build(podman: Podman, context: Path, *, epoch: int | None = None, cache: Path = CACHE) -> str:
    """Build the image in ``podman``'s store, tagged TAG; its id. ``context`` is made
    here (the bases and the wheels); ``epoch`` is the time written into the image."""
    context.mkdir(parents=True, exist_ok=True)
    for name in ("runtime", "build"):
        target = context / f"{name}.tar"
        if not target.exists():
            try:
                os.link(base(name, cache), target)
            except OSError:  # another file system: a copy
                shutil.copyfile(base(name, cache), target)
    if not (context / "wheels").exists():
        wheels(context / "wheels")
    if epoch is None:
        epoch = commit_time()
    podman(
        "build",
        "--format=docker",  # OCI's image configuration has no field for the HEALTHCHECK
        f"--timestamp={epoch}",
        "--network=none",
        "--no-cache",
        f"--tag={TAG}",
        f"--file={DEPLOY / 'Containerfile'}",
        context,
        timeout=TIMEOUT,
    )
    return podman("image", "inspect", "--format={{.Id}}", TAG).stdout.strip()


def commit_time() -> int:
    """SOURCE_DATE_EPOCH, else the time of the checkout's last commit."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    return int(run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"]).stdout)


def main() -> None:
    """Build the image and save it as an archive that `podman load` (or `docker load`)
    reads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "out" / "image")
    output = parser.parse_args().output
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bascule-image-") as work:
        podman = Podman(Path(work) / "podman")
        try:
            image = build(podman, Path(work) / "context", cache=output / "cache")
            archive = output / f"bascule-{VERSION}.tar"
            archive.unlink(missing_ok=True)
            podman("save", "--format=docker-archive", f"--output={archive}", TAG, timeout=300)
            size = int(podman("image", "inspect", "--format={{.Size}}", TAG).stdout)
        finally:
            podman.remove()
    print(f"{TAG}: image {image[:12]}, {size / 1e6:.0f} MB, saved to {archive}")
    print(f"load it with: podman load --input {archive}")


if __name__ == "__main__":
    main()
