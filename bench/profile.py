"""Profile a Bascule server (and its baseline) under the load of one benchmark scenario.

    .venv/bin/python bench/profile.py SCENARIO... [--py-spy PATH] [--duration 10]

Starts the servers as bench/run.py does (pinned, loopback, production settings), drives
each with the same load generator, and samples it with py-spy (``pip install
py-spy==0.4.3``, in any environment: give its path with --py-spy or put it on PATH)
without pausing it. For each side it prints, and appends to the report
(bench/PROFILES.md by default):

- the share of the samples per owner (Bascule's own code, connexion, starlette,
  uvicorn, SQLAlchemy...), with the CPU microseconds per request that share stands for;
- the frames with the most self time, with their owner;
- every Bascule frame (self and inclusive time), line by line.

Scenarios: gate-refusing, gate-open, gate-open-starlette, api-basic, api-cookie,
writes, get-log.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    BASIC,
    STATE_PATH,
    UPDATE_BODY,
    Bench,
    Server,
    Target,
    login,
    parse_args,
    say,
)

OWNERS = [
    ("Bascule", re.compile(r"^(bascule|handlers)/")),
    ("baseline (bench/)", re.compile(r"^bench/")),
    ("connexion", re.compile(r"^connexion/")),
    ("starlette", re.compile(r"^starlette/")),
    ("uvicorn", re.compile(r"^uvicorn/")),
    ("SQLAlchemy", re.compile(r"^sqlalchemy/")),
    ("anyio (thread pool)", re.compile(r"^anyio/")),
    ("jsonschema", re.compile(r"^(jsonschema|referencing|jsonschema_specifications)/")),
    ("psycopg", re.compile(r"^psycopg")),
    ("asyncio", re.compile(r"^asyncio/")),
]
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def owner(file: str) -> str:
    for name, pattern in OWNERS:
        if pattern.search(file):
            return name
    if file.startswith("<") or "/" not in file:
        return "stdlib / other"
    return "stdlib / other"


def parse(path: Path) -> tuple[int, list[tuple[list[tuple[str, str, str]], int]]]:
    """py-spy's raw (collapsed) output: (frames root first, count) per distinct stack."""
    stacks = []
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for text in stack.split(";"):
            m = FRAME.match(text)
            if m:
                frames.append((m["func"], m["file"], m["line"] or ""))
            else:
                frames.append((text, "", ""))
        stacks.append((frames, int(count)))
        total += int(count)
    return total, stacks


# Leaf frames of threads that wait (py-spy cannot always tell them from running ones).
IDLE = re.compile(r"^(threading\.py|queue\.py|selectors\.py|concurrent/futures/thread\.py)$")


def is_idle(frame: tuple[str, str, str]) -> bool:
    func, file, _ = frame
    return bool(IDLE.match(file)) and ("wait" in func or func in ("Queue.get", "get", "select"))


def summarise(path: Path, label: str, us_per_request: float) -> tuple[str, dict[str, float]]:
    """A report of one profile, and the µs per request of each owner and frame (for diffs)."""
    total, stacks = parse(path)
    idle = sum(count for frames, count in stacks if is_idle(frames[-1]))
    stacks = [(frames, count) for frames, count in stacks if not is_idle(frames[-1])]
    total -= idle
    if not total:
        return f"#### {label}\n\nno samples\n", {}
    by_owner: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[tuple[str, str]] = collections.Counter()
    bascule_lines: collections.Counter[tuple[str, str, str]] = collections.Counter()
    bascule_incl: collections.Counter[tuple[str, str]] = collections.Counter()
    for frames, count in stacks:
        func, file, line = frames[-1]
        by_owner[owner(file)] += count
        self_time[(func, file)] += count
        if owner(file) == "Bascule":
            bascule_lines[(func, file, line)] += count
        seen = set()
        for f, fl, _ in frames:
            if owner(fl) == "Bascule" and (f, fl) not in seen:
                seen.add((f, fl))
                bascule_incl[(f, fl)] += count

    def us(count: int) -> str:
        return f"{count / total * us_per_request:.1f}"

    out = [
        f"#### {label}",
        "",
        f"{total:,} samples (and {idle:,} of threads waiting, left out); {us_per_request:.1f} µs "
        "of server CPU per request during the run, shared out below in proportion to the "
        "samples. Coroutines resumed by the event loop appear as separate stacks, so "
        "inclusive shares are a lower bound; self shares are exact up to sampling.",
        "",
        "| owner (self time) | share | µs per request |",
        "|---|---:|---:|",
    ]
    for name, count in by_owner.most_common():
        out.append(f"| {name} | {count / total:.1%} | {us(count)} |")
    out += ["", "| top self frames | owner | share | µs/req |", "|---|---|---:|---:|"]
    for (func, file), count in self_time.most_common(15):
        out.append(f"| `{func}` ({file}) | {owner(file)} | {count / total:.1%} | {us(count)} |")
    if bascule_incl:
        out += ["", "| Bascule frames (inclusive) | share | µs/req |", "|---|---:|---:|"]
        for (func, file), count in bascule_incl.most_common(15):
            out.append(f"| `{func}` ({file}) | {count / total:.1%} | {us(count)} |")
        out += ["", "| Bascule lines (self) | share | µs/req |", "|---|---:|---:|"]
        for (func, file, line), count in bascule_lines.most_common(15):
            out.append(f"| `{func}` ({file}:{line}) | {count / total:.1%} | {us(count)} |")
    figures = {f"owner:{k}": v / total * us_per_request for k, v in by_owner.items()}
    figures.update(
        {f"{func} ({file})": v / total * us_per_request for (func, file), v in self_time.items()}
    )
    return "\n".join(out) + "\n", figures


def difference(
    label: str, figures: dict[str, float], base_label: str, base: dict[str, float]
) -> str:
    """Where the extra CPU time per request goes: self time per owner and per frame."""
    keys = set(figures) | set(base)
    delta = {k: figures.get(k, 0.0) - base.get(k, 0.0) for k in keys}
    owners = sorted((k for k in keys if k.startswith("owner:")), key=lambda k: -delta[k])
    out = [
        f"#### Difference: {label} minus {base_label} (self time, µs per request)",
        "",
        "| owner | Bascule side | baseline | difference |",
        "|---|---:|---:|---:|",
    ]
    for k in owners:
        out.append(
            f"| {k[6:]} | {figures.get(k, 0):.1f} | {base.get(k, 0):.1f} | {delta[k]:+.1f} |"
        )
    frames = sorted((k for k in keys if not k.startswith("owner:")), key=lambda k: -delta[k])
    out += ["", "| frames that cost more (self) | owner | difference µs/req |", "|---|---|---:|"]
    for k in frames[:20]:
        file = k.rsplit("(", 1)[-1].rstrip(")")
        out.append(f"| `{k}` | {owner(file)} | {delta[k]:+.1f} |")
    return "\n".join(out) + "\n"


def make_targets(bench: Bench, scenario: str) -> list[Target]:
    """The Bascule side first, then its baseline (if it has one)."""
    auth = {"Authorization": BASIC}
    if scenario == "gate-refusing":
        server = bench.bascule("p-bascule", bench.sqlite_url(f"{scenario}-a"))
        bench.enable(server)
        return [
            Target("Bascule gate 503", server, "/shop", 503),
            Target("bare ASGI 503", bench.baseline("p-bare", "refuse"), "/shop", 503),
        ]
    if scenario in ("gate-open", "gate-open-starlette"):
        kind, attr = (
            ("downstream", "downstream")
            if scenario == "gate-open"
            else ("starlette", "starlette_app")
        )
        server = bench.bascule(
            "p-bascule", bench.sqlite_url(f"{scenario}-a"), app=f"bench.apps:{attr}"
        )
        return [
            Target(f"{kind} behind Bascule", server, "/shop", 200),
            Target(f"{kind} alone", bench.baseline("p-alone", kind), "/shop", 200),
        ]
    if scenario in ("api-basic", "api-cookie"):
        server = bench.bascule("p-bascule", bench.sqlite_url(f"{scenario}-a"))
        headers = auth
        if scenario == "api-cookie":
            headers = {"Cookie": f"JSESSIONID={login(server.port)}"}
        bare = bench.baseline("p-connexion", "connexion")
        return [
            Target(f"Bascule GET state ({scenario})", server, STATE_PATH, 200, headers=headers),
            Target("connexion baseline (Basic)", bare, STATE_PATH, 200, headers=auth),
        ]
    if scenario == "writes":
        server = bench.bascule("p-bascule", bench.sqlite_url(f"{scenario}-a"))
        bench.enable(server)
        headers = {**auth, "Content-Type": "application/json"}
        return [
            Target(
                "Bascule PUT (SQLite)",
                server,
                STATE_PATH,
                201,
                method="PUT",
                headers=headers,
                body=UPDATE_BODY,
                connections=bench.opts.write_connections,
            )
        ]
    if scenario == "get-log":
        full = bench.bascule("p-full", bench.sqlite_url(f"{scenario}-a"))
        bench.enable(full)
        writer = Target(
            "fill",
            full,
            STATE_PATH,
            201,
            method="PUT",
            headers={**auth, "Content-Type": "application/json"},
            body=UPDATE_BODY,
        )
        bench.drive(writer, 120, max_requests=100, tool="python")
        fresh = bench.bascule("p-fresh", bench.sqlite_url(f"{scenario}-b"))
        bench.enable(fresh)
        return [
            Target("Bascule GET state, tail of 100", full, STATE_PATH, 200, headers=auth),
            Target("Bascule GET state, tail of 1", fresh, STATE_PATH, 200, headers=auth),
        ]
    raise SystemExit(f"unknown scenario {scenario}")


def profile(
    bench: Bench, scenario: str, target: Target, py_spy: str, duration: float, rate: int
) -> tuple[str, dict[str, float]]:
    server: Server = target.server
    bench.drive(target, 2)  # warm-up
    out = bench.work / f"{server.name}-{int(time.time())}.txt"
    argv = [
        py_spy,
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(round(duration)),
        "--rate",
        str(rate),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    spy = subprocess.Popen(
        bench.pinned(argv, bench.load_cpu),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = bench.drive(target, duration + 2)
    _, err = spy.communicate(timeout=duration + 60)
    if not out.exists():
        raise RuntimeError(f"py-spy failed: {err[-2000:]}")
    saved = Path(bench.opts.profiles_dir) / f"{scenario}-{server.name}.collapsed.txt"
    shutil.copy(out, saved)
    shown = saved.relative_to(ROOT) if saved.is_relative_to(ROOT) else saved
    us_per_request = result["server_cpu_s"] / result["requests"] * 1e6
    say(f"  {target.label}: {result['rps']:,.0f} req/s, {us_per_request:.1f} µs CPU/request")
    head = (
        f"{target.label}: {result['rps']:,.0f} req/s while sampled "
        f"(server CPU {result['cpu_util']:.0%}); stacks in {shown}"
    )
    return summarise(out, head, us_per_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios",
        nargs="+",
        choices=[
            "gate-refusing",
            "gate-open",
            "gate-open-starlette",
            "api-basic",
            "api-cookie",
            "writes",
            "get-log",
        ],
    )
    parser.add_argument(
        "--py-spy", default=os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy")
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "PROFILES.md")
    parser.add_argument(
        "--profiles-dir", type=Path, default=Path(tempfile.gettempdir()) / "bascule-profiles"
    )
    args = parser.parse_args()
    if not args.py_spy:
        raise SystemExit("py-spy not found: pip install py-spy==0.4.3, then --py-spy PATH")
    version = subprocess.run(
        [args.py_spy, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    opts = parse_args(["--postgres-url", ""])
    opts.profiles_dir = args.profiles_dir
    args.profiles_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(opts)
    source = bench.source_at_start
    sections = []
    try:
        for scenario in args.scenarios:
            say(f"== profiling {scenario}")
            targets = make_targets(bench, scenario)
            parts = [f"### {scenario}", ""]
            figures = []
            for target in targets:
                text, numbers = profile(
                    bench, scenario, target, args.py_spy, args.duration, args.rate
                )
                parts.append(text)
                figures.append((target.label, numbers))
            if len(figures) == 2:
                parts.append(difference(*figures[0], *figures[1]))
            sections.append("\n".join(parts))
            for server in bench.servers:
                server.stop()
    finally:
        bench.cleanup()
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    header = (
        f"## {now}: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n"
        f"Bascule code: {source}. "
        f"{version}, {args.rate} samples/s, non-blocking; load generator {bench.loadgen}, "
        f"{opts.connections} connections; servers pinned to CPU {bench.server_cpu}.\n"
    )
    text = header + "\n" + "\n".join(sections)
    existing = (
        args.out.read_text()
        if args.out.exists()
        else ("# Profiles\n\nGenerated by `bench/profile.py` (see bench/README.md); newest last.\n")
    )
    args.out.write_text(existing.rstrip("\n") + "\n\n" + text)
    say(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
