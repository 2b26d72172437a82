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


@pytest.fixture
def settings(settings):
    """A fuzzing run sends hundreds of wrong passwords (schemathesis's ignored_auth probes,
    which expect 401): past the throttle's limits they would rightly be 429s."""
    import dataclasses

    return dataclasses.replace(
        settings, failed_auth_per_address=100_000, failed_auth_per_user=100_000
    )


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
