"""The README's commands run as written, in a fresh directory: the command line's story
(a failed deploy and its release), the server in front of an application with its REST
API, a proxy recipe and the command it prints, and the two Python examples. Only what a
reader has to choose is filled in: passwords, and a free port for the server."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.run import free_port
from tests.serving import clean_env
from tests.test_readme import FENCE, README, section, text

pytestmark = pytest.mark.slow

ALICE_PASSWORD = "readme-alice-password-1"
ADMIN_PASSWORD = "readme-admin-password-1"


def blocks(title: str, level: int = 3, language: str = "sh") -> list[str]:
    """The code blocks of the README's section ``title`` in ``language``."""
    body = section(text(README), title, level)
    found = [m.group(0) for m in FENCE.finditer(body) if m.group(0).startswith(f"```{language}")]
    assert found, f"no {language} block under {title!r}"
    return ["\n".join(block.splitlines()[1:-1]) for block in found]


def commands(block: str) -> list[str]:
    """The block's commands, one per line once continued lines are joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def shell(
    command: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env() -> dict[str, str]:
    """A reader's shell: Bascule's commands on the PATH (an activated .venv), no setting."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return clean_env(PATH=path, ALICE_PASSWORD=ALICE_PASSWORD)


def test_the_command_line_story_runs_as_written(tmp_path: Path, env: dict[str, str]):
    (block,) = blocks("The command line")
    lines = commands(block)
    assert any(line.startswith("bascule run --process deploy -- ./deploy.sh") for line in lines)
    deploy = tmp_path / "deploy.sh"
    deploy.write_text("#!/bin/sh\necho 'migrating...'\nexit 3\n")  # the deploy that fails
    deploy.chmod(0o755)
    outputs = {}
    for line in lines:
        result = shell(line, tmp_path, env)
        failing = line.startswith("bascule run ")
        assert result.returncode == (3 if failing else 0), (line, result.stdout, result.stderr)
        outputs[line.split(" --", 1)[0]] = result.stdout + result.stderr
    assert (tmp_path / "bascule.db").is_file()  # the default database, where it says
    status = outputs["bascule maintenance status"]
    assert "read-only" in status
    ran = outputs["bascule run"]
    assert "exited with status 3; maintenance is still on. Next: retry with" in ran
    released = outputs["bascule maintenance release"]
    assert "Released from the process deploy" in released
    history = outputs["bascule maintenance history"]
    assert len(re.findall(r"^#\d+  ", history, re.M)) == 2  # by hand, the deploy
    assert "still on" in history and "released by" in history
    planned = shell("bascule schedule list", tmp_path, env).stdout
    assert "(ends by itself)" in planned and "Database upgrade" in planned
    users = shell("bascule users list", tmp_path, env).stdout
    assert re.search(r"^alice\s+ADMIN", users, re.M), users


@pytest.fixture
def served(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """The README's `bascule serve --app ...`, as written, on a free port."""
    (block,) = blocks("In front of your application")
    (line,) = commands(block)
    port = free_port()
    env = {**env, "BASCULE_PORT": str(port), "BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {line}"], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/rest/v1/admin/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_rest_api_and_the_gated_application_answer_as_written(
    served: tuple[str, Path], env: dict[str, str]
):
    url, cwd = served
    (block,) = blocks("The REST API")
    lines = commands(block)
    methods = [m.group(1) if (m := re.search(r" -X (\w+)", line)) else "GET" for line in lines]
    assert methods == [
        "POST",
        "PUT",
        "GET",
        "DELETE",
    ]
    answers = []
    for line in lines:
        written = line.replace("admin:PASSWORD", f"admin:{ADMIN_PASSWORD}")
        written = written.replace("http://127.0.0.1:8088", url)
        result = shell(written, cwd, env)
        assert result.returncode == 0, (line, result.stderr)
        envelope = json.loads(result.stdout)
        assert envelope["error"] is None, (line, envelope)
        answers.append(envelope["data"])
        if lines.index(line) == 1:  # maintenance on, with the message posted
            assert httpx.get(f"{url}/", timeout=10).status_code == 503
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # --allow
    assert answers[2]["log"][-1]["message"] == "Upgrading"
    assert answers[2]["progressPercent"] == 40
    assert httpx.get(f"{url}/", timeout=10).status_code == 200  # off again


def test_the_proxy_recipe_prints_the_commands_the_readme_shows(tmp_path: Path, env: dict[str, str]):
    (block,) = blocks("Behind your reverse proxy")
    lines = commands(block)
    assert lines[0] == "dir=$(mktemp -d)"
    configure = lines[1]
    follow, run_it = (line.split("#", 1)[0].strip() for line in lines[2:4])
    env = {**env, "TMPDIR": str(tmp_path)}  # mktemp -d, inside this test's directory
    script = f'{lines[0]}\n{configure}\nprintf "%s\\n" "$dir"'
    result = shell(script, tmp_path, env)
    assert result.returncode == 0, result.stderr
    *_, printed_follow, printed_run, directory = result.stdout.strip().splitlines()
    assert Path(directory).parent == tmp_path and (Path(directory) / "haproxy.cfg").is_file()
    for shown, printed in ((follow, printed_follow), (run_it, printed_run)):
        written = shlex.split(shown.replace('"$dir"', directory).replace("$dir", directory))
        argv = shlex.split(printed)
        # The follower is the bascule of the reader's PATH, printed as its whole path.
        assert [Path(argv[0]).name, *argv[1:]] == written, (printed, shown)
    assert not any(tmp_path.glob("proxy*"))  # nothing left in the reader's clone


def test_the_python_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gate_example, run_example = blocks("In your own code", language="python")
    monkeypatch.chdir(tmp_path)

    async def app(scope, receive, send):  # the reader's own application
        raise AssertionError("not called")

    namespace: dict[str, object] = {"app": app}
    # The README's own code is what runs here.
    exec(compile(gate_example, "README: MaintenanceGate", "exec"), namespace)  # noqa: S102
    gate = namespace["app"]
    assert type(gate).__name__ == "MaintenanceGate"
    gate.close()  # type: ignore[attr-defined]
    exec(compile(run_example, "README: automatic_maintenance", "exec"), {})  # noqa: S102
    assert (tmp_path / "bascule.db").is_file()
