"""The benchmark keeps working: a short run of every scenario, on SQLite, asserts its report.

Nothing here measures speed (the figures of a run this short mean nothing); it checks
that `bench/run.py` starts its servers, that every baseline answers what Bascule answers,
that every scenario reports a ratio, and that nothing it drove answered unexpectedly.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_a_short_benchmark_run_reports_every_scenario(tmp_path):
    out = tmp_path / "RESULTS.md"
    bench = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            *("--duration", "0.5", "--repeats", "1", "--warmup", "0.2"),
            *("--connections", "4", "--updates", "150", "--flips", "2"),
            *("--loadgen", "python", "--no-pin", "--postgres-url", "", "--out", str(out)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = bench.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the benchmark stops its servers on SIGTERM
        output, _ = bench.communicate(timeout=60)
        raise AssertionError("the benchmark took over 10 minutes:\n" + output[-3000:]) from None
    assert bench.returncode == 0, output[-3000:]
    report = out.read_text()
    assert "## Warnings" not in report, report
    assert "Same status, headers (but Date) and body on both sides: yes" in report
    summary = report.split("## Summary", 1)[1].split("## Details", 1)[0]
    for scenario in (
        "1. Gate refusing",
        "2a. Gate open, raw ASGI app",
        "2b. Gate open, Starlette app",
        "3. GET state, HTTP Basic",
        "4. GET state, session cookie",
        "3v. Response validation on",
        "3l. Access log on",
        "7. Memory of one worker",
        "5. Writes, SQLite",
        "5. GET after 150 updates vs after 100, SQLite",
        "6. Propagation, SQLite file, enable",
        "6. Propagation, SQLite file, disable",
    ):
        row = next((line for line in summary.splitlines() if scenario in line), None)
        assert row, f"no row for {scenario!r} in\n{summary}"
        cells = [cell.strip() for cell in row.split("|")]
        assert re.match(r"(p50 )?[\d,.]+ ", cells[4]), row  # Bascule's figure
        if cells[2].startswith(">= "):  # a goal: a ratio and a verdict
            assert re.match(r"\d+\.\d{3}x ", cells[5]), row
            assert cells[6] in ("yes", "**NO**"), row
    assert "PostgreSQL" not in summary  # skipped as asked, and said so
    # Every request the load generator sent got the status its scenario expects.
    counts = re.findall(r"\| (\d+) \|$", report, re.M)
    assert counts and all(c == "0" for c in counts), report
