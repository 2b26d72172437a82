"""schemathesis over the real ASGI app, as an admin: every check, positive and negative data."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import ADMIN


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/rest/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_conforms_to_its_spec(case):
    case.call_and_validate(headers=ADMIN)
