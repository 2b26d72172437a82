"""The contract as a product: the spec lints clean, and schemathesis runs the whole way
(examples, coverage, fuzzing, stateful) against a live server, as an admin and as a user."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bascule import spec
from tests.serving import BASCULE, clean_env, serving

ROOT = Path(__file__).parent.parent
NODE_BIN = ROOT / "node_modules" / ".bin"
OUT = ROOT / "out"
SCHEMATHESIS = str(Path(BASCULE[0]).parent / "schemathesis")


def node_tool(name: str) -> str:
    tool = NODE_BIN / name
    assert tool.exists(), f"{tool} is missing: run `npm ci` (the Makefile's test target does)"
    return str(tool)


@pytest.mark.node
def test_redocly_finds_nothing():
    result = subprocess.run(
        [node_tool("redocly"), "lint", "openapi.yaml", "--format=json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    # Ignored: the 4xx that health and the announcement's two operations cannot answer.
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 3}, report["problems"]
    assert result.returncode == 0


@pytest.mark.node
def test_spectral_finds_nothing():
    result = subprocess.run(
        [node_tool("spectral"), "lint", "openapi.yaml", "--fail-severity=hint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No results with a severity of 'hint' or higher found!" in result.stdout


# The password of the login form's example in the spec, so that the examples phase logs in.
LOGIN_EXAMPLE = spec.load()["paths"]["/login"]["post"]["requestBody"]["content"][
    "application/x-www-form-urlencoded"
]["example"]
VIEWER = ("viewer", "viewer-secret-1")


@pytest.mark.slow
@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_schemathesis_the_whole_way(database_url, tmp_path, role):
    admin = (LOGIN_EXAMPLE["username"], LOGIN_EXAMPLE["password"])
    user, password = admin if role == "admin" else VIEWER
    env = {
        "BASCULE_ADMIN_PASSWORD": admin[1],
        "BASCULE_ACCESS_LOG": "false",
    }
    with serving(database_url, tmp_path, env=env) as server:
        added = subprocess.run(
            [*BASCULE, "users", "add", VIEWER[0], "--password-stdin"],
            input=VIEWER[1] + "\n",
            env=clean_env(BASCULE_DATABASE_URL=database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        OUT.mkdir(exist_ok=True)
        backend = database_url.split(":", 1)[0].split("+")[0]
        report = OUT / f"schemathesis-{role}-{backend}.xml"
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{server.url}/rest/v1/openapi.json",
                "--url",
                f"{server.url}/rest/v1",
                "--auth",
                f"{user}:{password}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "50",
                "--request-timeout",
                "30",
                "--report",
                "junit",
                "--report-junit-path",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,  # where it keeps its cache of crashes
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        summary = result.stdout[result.stdout.find("SUMMARY") :]
        for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
            assert f"✅ {phase}" in summary, summary
        cases = re.search(r"Test cases:\s*\n\s*(.+)", summary)
        assert cases and "passed" in cases.group(1) and "failed" not in cases.group(1), summary
        assert report.exists()
