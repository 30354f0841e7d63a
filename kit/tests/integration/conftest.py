from __future__ import annotations

import pytest


@pytest.fixture
def db_url(fresh_database: str) -> str:
    return fresh_database


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    return fresh_vhost
