"""Every setting read from the environment, in one place.

With ``DATABASE_URL`` unset the harness uses the embedded PostgreSQL under the data dir;
with it set, that server is used and nothing is started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_DB_NAME = "harness"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, allowed[0])
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _choices(name: str, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated subset of ``allowed``, in the given order without repeats."""
    raw = _env(name, ",".join(default))
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    if not values or any(v not in allowed for v in values):
        raise ValueError(f"{name}={raw!r}: expected a comma-separated list of {', '.join(allowed)}")
    return values


def _port(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{name}={port} is out of range")
    return port


def with_database(url: str, dbname: str, *, scheme: str | None = None) -> str:
    """The same server URL pointing at another database (and optionally another driver scheme)."""
    parts = urlsplit(url)
    return urlunsplit((scheme or parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or APP_DB_NAME


def sqlalchemy_psycopg2(url: str) -> str:
    """Dagster storage needs psycopg2: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3,
    whose server-side binding breaks dagster-postgres's NOTIFY."""
    parts = urlsplit(url)
    netloc = parts.netloc
    # psycopg2 wants "user:@" rather than "user@" for an empty password over a unix socket.
    if "@" in netloc and ":" not in netloc.split("@", 1)[0]:
        user, host = netloc.split("@", 1)
        netloc = f"{user}:@{host}"
    query = urlencode(parse_qsl(parts.query))
    return urlunsplit(("postgresql+psycopg2", netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    external_database_url: str | None
    api_port: int
    dagster_ui_port: int
    dagster_grpc_port: int
    api_token: str | None
    run_launcher: str  # "warm" (our pool, the default) or "stock" (Dagster's DefaultRunLauncher)
    # OC modes a run request may choose: record (writes fixtures, calls the provider) and live
    # (calls the provider) are the operator's to enable; replay only by default.
    oc_modes: tuple[str, ...]

    @property
    def embedded(self) -> bool:
        return self.external_database_url is None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def oc_recordings_dir(self) -> Path:
        """Where record mode writes: never the package (``mise run oc:refresh`` writes there)."""
        return self.data_dir / "oc-fixtures"

    @property
    def dagster_home(self) -> Path:
        return Path(_env("DAGSTER_HOME", str(REPO_ROOT / "dagster_home")))

    @property
    def pool_socket(self) -> Path:
        return self.run_dir / "pool.sock"

    @property
    def dagster_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_ui_port}"


def load() -> Settings:
    data_dir = Path(_env("HARNESS_DATA_DIR", str(REPO_ROOT / ".data"))).resolve()
    api_port = _port("PORT", 3001)
    # The other ports follow PORT, so two stacks started with different PORTs never collide.
    return Settings(
        data_dir=data_dir,
        external_database_url=os.environ.get("DATABASE_URL") or None,
        api_port=api_port,
        dagster_ui_port=_port("DAGSTER_PORT", api_port + 1000),
        dagster_grpc_port=_port("DAGSTER_GRPC_PORT", api_port + 2000),
        api_token=os.environ.get("API_TOKEN") or None,
        run_launcher=_choice("HARNESS_RUN_LAUNCHER", ("warm", "stock")),
        oc_modes=_choices("HARNESS_OC_MODES", ("replay", "record", "live"), default=("replay",)),
    )
