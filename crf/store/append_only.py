"""Triggers that make a history table append-only in the database itself (21 CFR 11.10(e)).

An UPDATE or DELETE (and in PostgreSQL a TRUNCATE) of a protected table is refused by the database,
whatever program is connected, not only by this code.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection

REFUSAL = "history is append-only"


def protect(conn: Connection, table: str) -> None:
    if conn.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}: rows of {table} cannot be changed or deleted'); END")
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION ecrf_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION USING MESSAGE = '{REFUSAL}: rows of ' || TG_TABLE_NAME || ' cannot be changed or deleted'; END $$")
        conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                             "FOR EACH ROW EXECUTE FUNCTION ecrf_refuse_change()")
        conn.exec_driver_sql(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                             "FOR EACH STATEMENT EXECUTE FUNCTION ecrf_refuse_change()")
        return
    raise ValueError(f"the store supports SQLite and PostgreSQL, not {conn.dialect.name}")
