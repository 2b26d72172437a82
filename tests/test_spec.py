"""openapi.yaml is valid, and the code serves exactly what it declares."""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from bascule import spec

ROOT = Path(__file__).parent.parent


def test_the_spec_is_valid_openapi():
    validate(yaml.safe_load((ROOT / "openapi.yaml").read_text()))


@pytest.mark.slow
def test_the_wheel_holds_the_root_spec_and_every_file_the_service_reads(tmp_path):
    # Built from a copy of the sources, as `pip install` builds it, without touching these.
    source = tmp_path / "source"
    junk = shutil.ignore_patterns(".git", ".venv", "node_modules", "out", "__pycache__", "*.db*")
    shutil.copytree(ROOT, source, symlinks=True, ignore=junk)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path, source],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("bascule-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("bascule/openapi.yaml") == (ROOT / "openapi.yaml").read_bytes()
        names = set(archive.namelist())
    read_by_the_service = [
        *(ROOT / "bascule" / "console").iterdir(),
        *(ROOT / "bascule" / "banner").iterdir(),
        *(ROOT / "bascule" / "templates").iterdir(),
        *(ROOT / "bascule" / "migrations").rglob("*.py"),
        *(ROOT / "handlers").glob("*.py"),
    ]
    for file in read_by_the_service:
        assert file.relative_to(ROOT).as_posix() in names


def routed_operations():
    """The operations connexion routes to handlers (the gate answers the others itself)."""
    return [(p, m, op) for p, m, op in spec.operations() if not op.get("x-bascule-gate")]


def test_every_operation_routes_to_a_handler_named_after_it():
    for path, method, operation in routed_operations():
        module = importlib.import_module(f"handlers.{operation['tags'][0]}")
        assert callable(getattr(module, operation["operationId"], None)), (method, path)


def test_every_public_handler_function_serves_an_operation():
    operation_ids = {op["operationId"] for _, _, op in routed_operations()}
    for tag in {op["tags"][0] for _, _, op in routed_operations()}:
        module = importlib.import_module(f"handlers.{tag}")
        public = {
            name
            for name, fn in inspect.getmembers(module, inspect.isfunction)
            if fn.__module__ == module.__name__ and not name.startswith("_")
        }
        assert public <= operation_ids, f"handlers.{tag}: {public - operation_ids} serve nothing"


def test_the_operations_the_gate_answers_are_its_decision_paths():
    from bascule.decision import Decision

    marked = [(p, op) for p, _, op in spec.operations() if op.get("x-bascule-gate")]
    assert [op["operationId"] for _, op in marked] == ["check_gate"]
    assert all(op.get("security") == [] for _, op in marked)  # a proxy sends no credentials
    assert set(spec.decision_paths()) == {f"{base}/gate" for base in spec.API_BASES}
    assert "decide" in vars(Decision)


def test_every_operation_is_documented_with_examples():
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    for path, method, operation in spec.operations():
        assert operation.get("summary") and operation.get("description"), (method, path)
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
            # every body has an example; only the gate's decisions and a 204 may have none
            if "content" not in response:
                assert operation.get("x-bascule-gate") or status == "204", (method, path, status)
                continue
            for content in response["content"].values():
                assert "example" in content or "examples" in content, (method, path, status)


def test_the_seed_operations_keep_their_summaries():
    summaries = {(p, m): op["summary"] for p, m, op in spec.operations()}
    assert summaries[("/maintenance", "get")] == "Get state on current maintenance task."
    assert summaries[("/maintenance", "put")] == "Update maintenance state."
    assert summaries[("/maintenance", "delete")] == "Disable maintenance mode."
    assert summaries[("/maintenance", "post")] == "Enable maintenance mode."


def test_served_paths_cover_the_alien4cloud_aliases():
    served = set(spec.served_paths())
    for prefix in ("/rest/v1", "/rest/latest", "/rest"):
        assert f"{prefix}/maintenance" in served
    assert {"/login", "/logout"} <= served


def test_the_spec_and_the_domain_agree_on_the_log_tail():
    from bascule.model import LOG_TAIL

    assert spec.schema("MaintenanceModeState")["properties"]["log"]["maxItems"] == LOG_TAIL


def test_the_spec_and_the_domain_agree_on_what_a_message_is():
    from bascule.model import MESSAGE_MAX_LENGTH, visible

    rule = spec.schema("MaintenanceUpdateDTO")["properties"]["message"]
    first = spec.schema("MaintenanceEnableDTO")["properties"]["message"]
    assert (first["pattern"], first["maxLength"]) == (rule["pattern"], rule["maxLength"])
    assert rule["maxLength"] == MESSAGE_MAX_LENGTH
    pattern = re.compile(rule["pattern"])
    for code in range(1, 0x10000):
        if 0xD800 <= code < 0xE000:
            continue  # not a character: JSON can send one alone, the domain refuses it
        char = chr(code)
        assert bool(pattern.search(f" {char}\t")) == visible(char), hex(code)
    assert not pattern.search("x\x00")
    for invisible in ("\u200b\ufeff\u202e", "\u2060\u00ad", "\u3164\u2800", " \n\t\u3000"):
        assert not visible(invisible[0]) and not pattern.search(invisible)
