"""Plain SQL migrations: ``sql/NNNN_name.sql`` applied in lexical order under an advisory lock.

Each file runs in one transaction together with its ``schema_migrations`` row; a changed
checksum of an applied file is a hard error; re-running is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import REPO_ROOT
from pipelines.store.db import connect

SQL_DIR = REPO_ROOT / "sql"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Arbitrary constant shared by every runner of this project: serializes concurrent migrators.
_LOCK_KEY = 7_305_001

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        if not _NAME.match(path.name):
            raise MigrationError(f"{path}: migration files must be named NNNN_<lowercase_name>.sql")
        found.append(Migration(version=path.stem, path=path))
    numbers = [m.version[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"{sql_dir}: two migrations share a number: {numbers}")
    return found


def migrate(url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    migrations = discover(sql_dir)
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_BOOKKEEPING)
            rows = conn.execute("SELECT version, checksum FROM public.schema_migrations").fetchall()
            applied: dict[str, str] = dict(rows)
            known = {m.version for m in migrations}
            for version in sorted(set(applied) - known):
                raise MigrationError(f"applied migration {version} has no file in {sql_dir}")
            for m in migrations:
                if m.version in applied:
                    if applied[m.version] != m.checksum:
                        raise MigrationError(
                            f"{m.path}: checksum changed since it was applied "
                            f"({applied[m.version][:12]} -> {m.checksum[:12]}); "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.path.read_text().encode())
                    conn.execute(
                        "INSERT INTO public.schema_migrations (version, checksum) VALUES (%s, %s)",
                        (m.version, m.checksum),
                    )
                applied_now.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
