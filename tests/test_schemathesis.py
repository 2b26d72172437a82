"""schemathesis over the real ASGI app, as an admin: every check, positive and negative data."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as examples

from tests.conftest import ADMIN

# The HTTP layer: the database's backend changes nothing here (test_api runs on both).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# What the command-line run is told (tests/test_contract.py), told here too.
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def api_schema(app):
    config = schemathesis.Config.from_path(CONFIG)
    return schemathesis.openapi.from_asgi("/rest/v1/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@examples(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_conforms_to_its_spec(case):
    case.call_and_validate(headers=ADMIN)
