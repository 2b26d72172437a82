"""Instructions per request, counted by valgrind: the gate's cost without the machine's noise.

    .venv/bin/python bench/instructions.py [PAIR...]

PAIR: gate-refusing, gate-open, gate-open-starlette, layer, api-basic, api-cookie.

For each target it starts the server under ``valgrind --tool=callgrind`` twice, sends
``--small`` keep-alive requests to the first and ``--large`` to the second (after
the same warm-up and, for the cookie, the same login), stops them, and divides the
difference of the two instruction totals by the difference of the request counts:
start-up and shut-down cancel out. The count is the same on a busy machine as on a
quiet one, so the ratio of two targets is exact up to a few hundred instructions.
Bascule runs on SQLite with ``BASCULE_POLL_INTERVAL=1000``: valgrind slows the server
about fifty times, and the monitor's polls, driven by the clock, would otherwise count
fifty times too; every run has the same hash seed. Appends a table to
bench/INSTRUCTIONS.md, and for each pair the ``--functions`` C functions (of the
interpreter, the event loop, the parser) whose instructions per request differ most
between its two sides, counted the same way from ``callgrind_annotate``: where the
difference is spent. Needs valgrind (Debian's package); talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apps import USERS  # noqa: E402
from bench.run import BASIC, STATE_PATH, Server, free_port, login  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
BASCULE = [PYTHON, "-m", "bascule.cli", "serve"]
APPS = [PYTHON, str(ROOT / "bench" / "apps.py")]


def mounted(label: str, app: str) -> tuple[str, list[str], bool, str, None, int]:
    """Bascule with ``app`` mounted behind the gate, open: ``GET /shop`` answered 200."""
    return (label, [*BASCULE, "--app", app], False, "/shop", None, 200)


# Baselines of two pairs each.
RAW_APP_ALONE = ("raw ASGI app alone", [*APPS, "downstream"], False, "/shop", None, 200)
CONNEXION_BASIC = (
    "connexion baseline (Basic)",
    [*APPS, "connexion"],
    False,
    STATE_PATH,
    "basic",
    200,
)

# name: [(label, argv, maintenance on, path, auth, status)], baseline first.
PAIRS = {
    "gate-refusing": [
        ("bare ASGI 503", [*APPS, "refuse"], False, "/shop", None, 503),
        ("Bascule gate 503", BASCULE, True, "/shop", None, 503),
    ],
    "gate-open": [
        RAW_APP_ALONE,
        mounted("raw ASGI app behind Bascule", "bench.apps:downstream"),
    ],
    "gate-open-starlette": [
        ("Starlette app alone", [*APPS, "starlette"], False, "/shop", None, 200),
        mounted("Starlette app behind Bascule", "bench.apps:starlette_app"),
    ],
    "layer": [
        RAW_APP_ALONE,
        ("raw ASGI app behind an empty layer", [*APPS, "layer"], False, "/shop", None, 200),
    ],
    "api-basic": [
        CONNEXION_BASIC,
        ("Bascule (Basic)", BASCULE, False, STATE_PATH, "basic", 200),
    ],
    "api-cookie": [
        CONNEXION_BASIC,
        ("Bascule (session cookie)", BASCULE, False, STATE_PATH, "cookie", 200),
    ],
}


def bascule_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    """Run one ``bascule`` command on the database that ``env`` names."""
    subprocess.run(
        [PYTHON, "-m", "bascule.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def drive(port: int, count: int, path: str, auth: str | None, status: int) -> None:
    """``count`` keep-alive GETs, each checked; the cookie is obtained by one login first."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {}
    if auth == "basic":
        headers["Authorization"] = BASIC
    elif auth == "cookie":
        headers["Cookie"] = f"JSESSIONID={login(port)}"
    for _ in range(count):
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != status:
            raise SystemExit(f"GET {path} answered {answer.status}, not {status}")


def instructions(
    argv: list[str],
    env: dict[str, str],
    work: Path,
    path: str,
    auth: str | None,
    status: int,
    requests: int,
    warmup: int,
) -> tuple[int, Counter[str]]:
    """Instructions of one server's life serving ``warmup + requests`` requests: in all,
    and by function."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=work))  # this run's files only
    out = work / f"callgrind.{port}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    server = Server(f"callgrind-{port}", [*valgrind, *argv, *listen], env, work / "server.log")
    server.start()
    try:
        server.wait_ready(timeout=300)  # valgrind slows the start about fifty times
        drive(port, warmup + requests, path, auth, status)
    finally:
        server.stop(grace=300)  # callgrind writes its counts at exit
    files = sorted(work.glob(f"callgrind.{port}.out*"))
    totals = [
        int(line.split()[1])
        for file in files
        for line in file.read_text(errors="replace").splitlines()
        if line.startswith("totals:")
    ]
    return sum(totals), function_costs(files)


# "1,234 (12.3%)  /build/Python-3.11.7/Python/ceval.c:_PyEval_EvalFrameDefault'2 [/lib/...]"
_RECURSION = re.compile(r"'\d+$")
_ANNOTATED = re.compile(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S[^\[]*?)\s*(?:\[.*\])?$")


def function_costs(files: list[Path]) -> Counter[str]:
    """Instructions spent in each function itself, as ``file.c:function``.

    Recursion levels (callgrind's ``'2``) are merged: a layer more in front of an
    application runs the same functions one level deeper.
    """
    costs: Counter[str] = Counter()
    for file in files:
        annotated = subprocess.run(
            [
                "callgrind_annotate",
                *("--inclusive=no", "--threshold=100", "--auto=no", "--show-percs=yes"),
                str(file),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in annotated.splitlines():
            match = _ANNOTATED.match(line)
            if match and ":" in match[2]:
                where, _, function = match[2].partition(":")
                function = _RECURSION.sub("", function)
                costs[f"{where.rsplit('/', 1)[-1]}:{function}"] += int(match[1].replace(",", ""))
    return costs


def per_request(
    small: tuple[int, Counter[str]], large: tuple[int, Counter[str]], n: int
) -> tuple[float, dict[str, float]]:
    """Per request: the total, and each function's share (large run minus small run)."""
    functions = {
        name: (large[1][name] - small[1][name]) / n for name in large[1].keys() | small[1].keys()
    }
    return (large[0] - small[0]) / n, functions


def breakdown(base: dict[str, float], other: dict[str, float], top: int) -> list[str]:
    """Table rows of the ``top`` functions whose instructions per request differ most."""
    names = sorted(
        base.keys() | other.keys(),
        key=lambda name: (-abs(other.get(name, 0.0) - base.get(name, 0.0)), name),
    )
    rows = []
    for name in names[:top]:
        before, after = round(base.get(name, 0.0)), round(other.get(name, 0.0))
        rows.append(f"| `{name}` | {before:,} | {after:,} | {after - before:+,} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/instructions.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("pairs", nargs="*", default=list(PAIRS), help=", ".join(PAIRS))
    parser.add_argument("--small", type=int, default=500, help="requests of the first run")
    parser.add_argument("--large", type=int, default=3500, help="requests of the second run")
    parser.add_argument(
        "--functions", type=int, default=12, help="functions shown per pair (0: none)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "INSTRUCTIONS.md")
    opts = parser.parse_args(argv)
    unknown = set(opts.pairs) - set(PAIRS)
    if unknown:
        parser.error(f"unknown pairs: {', '.join(sorted(unknown))}")
    if not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    # Stopped from outside (a timeout, kill): stop the server under valgrind all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows: list[str] = []
    details: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bascule-instructions-") as tmp:
        work = Path(tmp)
        for name in opts.pairs:
            sides: list[tuple[str, float, dict[str, float]]] = []
            for label, server, enabled, path, auth, status in PAIRS[name]:
                env = {
                    **os.environ,
                    "BASCULE_ACCESS_LOG": "false",
                    "BASCULE_VALIDATE_RESPONSES": "false",
                    "BASCULE_POLL_INTERVAL": "1000",
                    "BASCULE_ADMIN_PASSWORD": USERS["admin"],
                    "PYTHONHASHSEED": "0",  # the same dict layouts in every run
                    "BASCULE_DATABASE_URL": f"sqlite:///{work}/{name}-{len(sides)}.db",
                }
                if server[: len(BASCULE)] == BASCULE:
                    # Create the database and the admin once, outside the counted runs.
                    bascule_cli(env, "db", "upgrade")
                    bascule_cli(
                        env,
                        "users",
                        "add",
                        "admin",
                        "--role",
                        "ADMIN",
                        "--password-stdin",
                        stdin=USERS["admin"],
                    )
                    if enabled:
                        bascule_cli(env, "maintenance", "on")
                small, large = [
                    instructions(server, env, work, path, auth, status, n, warmup=100)
                    for n in (opts.small, opts.large)
                ]
                total, functions = per_request(small, large, opts.large - opts.small)
                sides.append((label, total, functions))
                print(f"{name}: {label}: {total:,.0f} instructions per request", flush=True)
            (base_label, base, base_functions), (label, value, functions) = sides
            rows.append(
                f"| {name} | {base_label}: {base:,.0f} | {label}: {value:,.0f} "
                f"| {base / value:.3f}x |"
            )
            if opts.functions > 0:
                details.append(
                    f"\n{name}: the {opts.functions} functions whose instructions per request "
                    f"differ most ({round(value) - round(base):+,} in all).\n\n"
                    f"| function | {base_label} | {label} | difference |\n|---|---:|---:|---:|\n"
                    + "\n".join(breakdown(base_functions, functions, opts.functions))
                    + "\n"
                )
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    text = (
        ""
        if opts.out.exists()
        else (
            "# Instructions per request\n\nGenerated by `bench/instructions.py` (see its "
            "docstring); newest last.\n"
        )
    )
    text += (
        f"\n## {now}: `{' '.join(['bench/instructions.py', *sys.argv[1:]])}`\n\n"
        f"{opts.large - opts.small:,} requests counted per target (runs of {opts.small:,} "
        f"and {opts.large:,}); Python {sys.version.split()[0]}.\n\n"
        "| pair | baseline | measured | ratio (baseline / measured instructions) |\n"
        "|---|---:|---:|---:|\n" + "\n".join(rows) + "\n" + "".join(details)
    )
    with opts.out.open("a", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
