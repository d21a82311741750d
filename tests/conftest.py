"""Shared fixtures: a fresh data directory and real databases (SQLite file, PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_data import SHARED_DATA

from scorer.migrate import init_db
from scorer.settings import Settings, load_settings
from scorer.store import dispose_engines

REPO = Path(__file__).resolve().parent.parent
REAL_GIFS = SHARED_DATA / "real-gifs"
PG_ADMIN_URL = os.environ.get("MOODGIF_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run should start it)")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"moodgif_test_{uuid.uuid4().hex[:12]}"
    admin = pg_server.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """A database migrated to the newest schema once per test run; every `db_url` test on
    PostgreSQL gets a copy of it (CREATE DATABASE ... TEMPLATE), which is several times
    cheaper than running the migrations again."""
    import psycopg

    name = f"moodgif_tpl_{uuid.uuid4().hex[:12]}"
    admin = pg_server.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    init_db(pg_server.rsplit("/", 1)[0] + f"/{name}")
    dispose_engines()  # a template must have no open connections to be copied
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_migrated_url(pg_server: str, pg_template: str) -> Iterator[str]:
    """A brand-new PostgreSQL database already at the newest schema, dropped afterwards."""
    import psycopg

    name = f"moodgif_test_{uuid.uuid4().hex[:12]}"
    admin = pg_server.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, home: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database
    (already migrated: the migrations themselves are tested from empty in test_migrations)."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'moodgif.db'}"
    return request.getfixturevalue("pg_migrated_url")


@pytest.fixture
def settings(home: Path, db_url: str) -> Settings:
    return load_settings(env={}, home=str(home), database_url=db_url)


@pytest.fixture
def sqlite_settings(home: Path) -> Settings:
    """Settings on SQLite only, for tests whose subject is not the store."""
    return load_settings(env={}, home=str(home))


@pytest.fixture
def engine(settings: Settings):  # type: ignore[no-untyped-def]
    eng = init_db(settings.db_url)
    yield eng
    dispose_engines()


@pytest.fixture
def sqlite_engine(sqlite_settings: Settings):  # type: ignore[no-untyped-def]
    eng = init_db(sqlite_settings.db_url)
    yield eng
    dispose_engines()


@pytest.fixture(scope="session")
def real_gifs() -> Path:
    if not (REAL_GIFS / "manifest.csv").is_file():
        pytest.skip("../shared/data/real-gifs is not present")
    return REAL_GIFS
