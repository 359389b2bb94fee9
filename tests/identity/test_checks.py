"""The deployment checks: usernames must be ordered by code point on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection

from identity import checks

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL collation check")
def test_a_code_point_collation_passes_and_any_other_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert checks.check_username_collation(databases=["default"]) == []
    # The same database, were its collation not one of the code-point ones.
    monkeypatch.setattr(checks, "CODE_POINT_COLLATIONS", set())
    errors = checks.check_username_collation(databases=["default"])
    assert [e.id for e in errors] == ["actas.E001"]
    assert "C.UTF-8" in (errors[0].hint or "")


def test_sqlite_compares_by_code_point_and_is_not_checked() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite branch")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'a.c' < 'a_b'")
        assert cursor.fetchone()[0] == 1  # '.' (0x2E) sorts before '_' (0x5F)
    assert checks.check_username_collation(databases=["default"]) == []
