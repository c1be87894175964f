"""Opening a study store: SQLite file or PostgreSQL URL, schema revision checks, one locked transaction per run.

`transaction(...)` is the only way in: it connects, takes the store's write lock (SQLite BEGIN
IMMEDIATE; PostgreSQL a transaction-level advisory lock), creates or upgrades the schema with Alembic,
checks that the store belongs to this study, and commits everything or nothing. Every failure a user
can cause (wrong study, newer schema, locked or read-only file, server down, wrong password) is a
StoreError with one clear sentence; the password of a URL never appears in it.
"""
from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from .schema import store_info

if TYPE_CHECKING:  # Alembic is imported only when the schema is created or upgraded
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK = 0x0EC7F0  # one writer at a time per PostgreSQL database (pg_advisory_xact_lock)
DEFAULT_WAIT = 30.0  # seconds to wait for another run holding the store


class StoreError(Exception):
    """The store cannot be used for this run; nothing was written."""


@dataclass(frozen=True)
class StoreTarget:
    url: str  # SQLAlchemy URL
    shown: str  # for messages: the file path, or the URL without its password
    path: Optional[Path] = None  # the SQLite file

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None


def target(spec: str) -> StoreTarget:
    """`study.db` (a path: SQLite) or `postgresql://user:pw@host/db` (any URL SQLAlchemy and psycopg accept)."""
    if "://" not in spec:
        path = Path(spec)
        return StoreTarget(f"sqlite:///{path.resolve()}", str(path), path)
    try:
        url = make_url(spec)
    except ArgumentError:
        raise StoreError(f"--store {spec.split('@')[-1]!r} is neither a file path nor a database URL")
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername.startswith("sqlite"):
        return StoreTarget(url.render_as_string(hide_password=False), url.database or ":memory:",
                           Path(url.database) if url.database else None)
    else:
        raise StoreError(f"--store must be a SQLite file or a postgresql:// URL, not {url.drivername}://")
    return StoreTarget(url.render_as_string(hide_password=False), url.render_as_string(hide_password=True))


def engine_for(where: StoreTarget, wait: float = DEFAULT_WAIT) -> Engine:
    if where.is_sqlite:
        engine = create_engine(where.url, connect_args={"timeout": wait}, poolclass=_null_pool())

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.isolation_level = None  # the driver's own BEGIN is deferred; ours takes the write lock
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(where.url, poolclass=_null_pool(),
                         connect_args={"connect_timeout": max(1, int(wait)), "application_name": "open-ecrf"})


def _null_pool() -> type:
    from sqlalchemy.pool import NullPool
    return NullPool  # one run, one connection: nothing is kept open after it


@contextlib.contextmanager
def transaction(spec: str, study_id: str, wait: float = DEFAULT_WAIT, create: bool = True) -> Iterator[Connection]:
    """A connection inside the run's one transaction, on a store of `study_id` at the current schema revision."""
    where = target(spec)
    if where.is_sqlite and where.path is not None:
        _check_sqlite_file(where, create)
    engine = engine_for(where, wait)
    try:
        with engine.connect() as conn:
            try:
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})")
                    _migrate(conn, where)
                    _check_study(conn, where, study_id)
                    yield conn
            except StoreError:
                raise
            except OperationalError as exc:
                raise StoreError(_explain(exc, where)) from None
            except DBAPIError as exc:
                raise StoreError(f"the store {where.shown} refused the change, nothing was written: {_first_line(exc)}") from None
    except OperationalError as exc:
        raise StoreError(_explain(exc, where)) from None
    except SQLAlchemyError as exc:
        raise StoreError(f"the store {where.shown} cannot be used: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _check_sqlite_file(where: StoreTarget, create: bool) -> None:
    path = where.path
    assert path is not None
    if path.is_dir():
        raise StoreError(f"--store {where.shown} is a folder; give a file name such as study.db")
    if not path.exists():
        if not create:
            raise StoreError(f"there is no store {where.shown}; record returns first with validate.py PATH --store {where.shown}")
        if not path.parent.is_dir():
            raise StoreError(f"the folder of the store {where.shown} does not exist")
        return
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise StoreError(f"{where.shown} is not a study store (not an SQLite database); give the store's file or a new file name")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def _explain(exc: OperationalError, where: StoreTarget) -> str:
    text = _first_line(exc)
    low = text.lower()
    if "locked" in low or "lock timeout" in low:
        return (f"the store {where.shown} is in use by another program (another validate.py run, or a database tool "
                f"holding it); nothing was written; try again when it has finished")
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return f"the store {where.shown} cannot be written (read-only file or folder); nothing was written; use a copy you may write, or ask for write access"
    if "password authentication failed" in low or "no password supplied" in low:
        return f"the PostgreSQL server refused the password for {where.shown}; nothing was written; check the user and password"
    if "connection" in low or "could not" in low or "server" in low or "no such file" in low:
        return f"cannot connect to the PostgreSQL server {where.shown} ({text}); nothing was written; check that the server is running and the URL is right"
    return f"the store {where.shown} cannot be used ({text}); nothing was written"


# -- schema revisions -------------------------------------------------------------------------------
def _alembic_config(conn: Connection) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]  # reading the script directory needs no connection
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def current_revision(conn: Connection) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def _migrate(conn: Connection, where: StoreTarget) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(conn)
    script = ScriptDirectory.from_config(cfg)
    current = current_revision(conn)
    head = script.get_current_head()
    if current == head:
        return
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(f"the store {where.shown} was written by a newer version of open-ecrf (schema revision {current}; "
                         f"this version knows up to {head}); nothing was written; upgrade open-ecrf to use it")
    if current is None:
        from sqlalchemy import inspect
        tables = set(inspect(conn).get_table_names())
        if tables:
            raise StoreError(f"{where.shown} is a database, but not an open-ecrf study store (it has tables {', '.join(sorted(tables)[:5])}); "
                             "give the study store, or a new file or an empty database")
    command.upgrade(cfg, "head")


def _check_study(conn: Connection, where: StoreTarget, study_id: str) -> None:
    from .. import __version__

    rows: dict[str, str] = dict(conn.execute(select(store_info.c.key, store_info.c.value)).tuples().all())
    if not rows:
        conn.execute(store_info.insert(), [{"key": "study", "value": study_id}, {"key": "created_by", "value": __version__}])
        return
    if rows.get("study") != study_id:
        raise StoreError(f"the store {where.shown} belongs to study {rows.get('study')!r}, not to {study_id}; nothing was written; "
                         f"give the store of {study_id} (each study has its own store)")
