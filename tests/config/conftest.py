"""Fixtures of the tests that start actas as deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deployed import deployed_env, manage


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a signing key set (as `manage.py rotate_signing_key` makes it): pass it
    to ``deployed_env``."""
    tmp = tmp_path_factory.mktemp("keyed")
    done = manage(deployed_env(tmp), "rotate_signing_key")
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp
