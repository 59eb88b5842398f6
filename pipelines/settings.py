"""Every setting read from the environment, in one place: the only module that reads it.

``VARIABLES`` declares each variable once (name, default, meaning); ``load()`` reads only declared
variables, validates them and fails with an error naming the variable. The README's settings table
is this declaration printed (``python -m pipelines.settings``), and a unit test keeps them equal.

With ``DATABASE_URL`` unset the harness uses the embedded PostgreSQL under the data dir;
with it set, that server is used and nothing is started.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_DB_NAME = "harness"
RUN_LAUNCHERS = ("warm", "stock", "celery")
LOG_FORMATS = ("json", "text")
OC_MODES = ("replay", "record", "live")
OC_DIALECTS = ("auto", "openai", "llama-cpp")


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as a reader sees it in the README
    what: str


VARIABLES = (
    Variable("PORT", "3001", "the API"),
    Variable("DAGSTER_PORT", "`PORT`+1000 (4001)", "Dagster UI / GraphQL"),
    Variable("DAGSTER_GRPC_PORT", "`PORT`+2000 (5001)", "the standalone Dagster code server"),
    Variable("DAGSTER_URL", "`http://127.0.0.1:DAGSTER_PORT`",
             "where the API and sensors reach the Dagster webserver's GraphQL, and the base of the RunView's "
             "UI links (set when the webserver runs elsewhere, e.g. `deploy/k8s`)"),
    Variable("HARNESS_DATA_DIR", "`.data`", "PID files, logs, embedded PostgreSQL, pool socket"),
    Variable("DATABASE_URL", "unset: embedded server",
             "app database on any PostgreSQL ≥ 14 (`postgresql://user:pw@host/db`)"),
    Variable("DAGSTER_DATABASE_URL", "`DATABASE_URL` with database `<name>_dagster`",
             "Dagster's run/event/schedule storage"),
    Variable("APP_DATABASE_URL", "set by `up`", "the app database as resolved once by `up` for the processes it starts"),
    Variable("DAGSTER_HOME", "`dagster_home/`", "Dagster's instance config (`dagster.yaml`)"),
    Variable("HARNESS_RUN_LAUNCHER", "`warm`",
             "`warm` (our pool), `stock` (Dagster's QueuedRunCoordinator + DefaultRunLauncher) or `celery` "
             "(Dagster's CeleryRunLauncher onto the broker; runs execute on `mise run worker` hosts)"),
    Variable("BROKER_URL", "unset: embedded Redis on `PORT`+4000 (7001)",
             "the Celery broker (`redis://host:port/db`); results go to the same server's next database"),
    Variable("WORKERS", "0", "with `HARNESS_RUN_LAUNCHER=celery`, Celery workers `up` starts beside the stack "
             "(a single-machine trial; each its own data dir under `<data dir>/workers/`)"),
    Variable("HARNESS_WORKER_NAME", "`worker-<hostname>`", "this worker host's name (its lease in `app.worker_leases`)"),
    Variable("HARNESS_WORKER_CONCURRENCY", "1", "runs one worker host executes at once"),
    Variable("HARNESS_WORKER_QUEUES", "`dagster`", "the broker queues a worker consumes, comma-separated"),
    Variable("HARNESS_LEASE_TTL_S", "10",
             "a worker's heartbeat lease: renewed every TTL/5; the reaper fails the runs of a lease older than this"),
    Variable("HARNESS_WORKER_LEASE", "set by `mise run worker`",
             "`<worker>:<epoch>`, the lease the worker's Celery processes run under (checked at checkpoint commit)"),
    Variable("HARNESS_POOL_SOCKET", "`<data dir>/run/pool.sock`", "the warm pool's unix socket"),
    Variable("HARNESS_POOL_MAX_RUNNING", "4", "runs the warm pool executes at once"),
    Variable("HARNESS_SOAK_CRON", "`17 * * * *`", "when the scheduled durability soak runs (cron, 5 fields)"),
    Variable("HARNESS_PRUNE_OLDER_THAN", "unset: off",
             "when set (`30d`, `12h`, `90m`), the `prune` job deletes finished runs older than that on "
             "`HARNESS_PRUNE_CRON` (as `mise run runs:prune -- --apply`)"),
    Variable("HARNESS_PRUNE_CRON", "`23 3 * * *`", "when that prune runs (cron, 5 fields)"),
    Variable("HARNESS_SOAK_PRUNE_OLDER_THAN", "unset: off",
             "when set, the `prune` job deletes the soak's proof rows and runs older than that on "
             "`HARNESS_SOAK_PRUNE_CRON` (as `mise run runs:prune -- --soak --apply`)"),
    Variable("HARNESS_SOAK_PRUNE_CRON", "`53 3 * * *`", "when the soak prune runs (cron, 5 fields)"),
    Variable("API_TOKEN", "unset", "when set, every write route needs `Authorization: Bearer <token>`"),
    Variable("HARNESS_OC_MODES", "`replay`",
             "OC modes a run request may choose, comma-separated (`replay`, `record`, `live`); any other "
             "gets a 403 and writes no row. `record` writes under `HARNESS_DATA_DIR/oc-fixtures`"),
    Variable("OC_BASE_URL", "unset: the embedded model server",
             "the live OC provider's OpenAI-compatible base URL; unset, live and record modes use the embedded "
             "model server (`mise run model:up`, `http://127.0.0.1:<OC_MODEL_PORT>/v1`)"),
    Variable("OC_MODEL", "unset", "the model id served there (required with `OC_BASE_URL`)"),
    Variable("OC_DIALECT", "`auto`",
             "how structured output is asked for: `openai` (`json_schema`, strict), `llama-cpp` (`json_object` "
             "with a translated schema), or `auto`: `llama-cpp` for the embedded server, else `openai`, switching "
             "to `llama-cpp` when the server refuses `json_schema` the way llama-cpp-python does"),
    Variable("OC_MAX_TOKENS", "unset: 768 on the embedded server",
             "`max_tokens` per plan (elsewhere unset sends none: the provider's default)"),
    Variable("OC_MODEL_PORT", "`PORT`+3000 (6001)", "the embedded model server (loopback only)"),
    Variable("OC_MODEL_THREADS", "2", "threads the embedded model server computes with"),
    Variable("OC_API_KEY", "unset", "its key (a secret: Dagster reads it at launch through `EnvVar`)"),
    Variable("OC_TIMEOUT_S", "60", "seconds per provider attempt"),
    Variable("OC_MAX_RETRIES", "3", "provider retries after the first attempt"),
    Variable("HARNESS_ALERT_URLS", "unset: alerts off",
             "webhook URLs (`http(s)://`, comma-separated) that each get a signed JSON event when a run ends "
             "`failed` with no retry left or `canceled` (`contracts/alert-event.schema.json`)"),
    Variable("HARNESS_ALERT_SECRET", "unset",
             "the HMAC-SHA256 key signing every alert (a secret; required with `HARNESS_ALERT_URLS`)"),
    Variable("HARNESS_ALERT_TIMEOUT_S", "5", "seconds per alert delivery attempt"),
    Variable("HARNESS_LOG_FORMAT", "`json`",
             "`json`: our processes and the run workers log one JSON object per line with the run's ids "
             "(README: Logs); `text`: plain lines"),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", "unset: tracing off",
             "when set (or the next one), every process exports its spans over OTLP/HTTP there "
             "(`http://collector:4318`); the SDK reads the other standard `OTEL_*` variables itself "
             "(`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, …)"),
    Variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "unset",
             "the traces endpoint in full (`http://collector:4318/v1/traces`); turns tracing on too"),
    Variable("OTEL_TRACES_EXPORTER", "`otlp`", "`none` turns tracing off even with an endpoint set"),
    Variable("OTEL_SDK_DISABLED", "`false`", "`true` turns tracing off even with an endpoint set"),
)
_DECLARED = frozenset(v.name for v in VARIABLES)


def _env(name: str, default: str = "") -> str:
    if name not in _DECLARED:  # every variable read is declared, hence documented
        raise KeyError(f"{name} is not declared in pipelines.settings.VARIABLES")
    value = os.environ.get(name, "").strip()
    return value or default


def _optional(name: str) -> str | None:
    return _env(name) or None


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


def _int(name: str, default: int, low: int, high: int, what: str = "a whole number") -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {what}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is out of range ({low}–{high})")
    return value


def _port(name: str, default: int) -> int:
    return _int(name, default, 1, 65535, "a port number")


def _seconds(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{name}={value} must be more than 0 seconds")
    return value


def _cron(name: str, default: str) -> str:
    value = " ".join(_env(name, default).split())
    if len(value.split(" ")) != 5:
        raise ValueError(f"{name}={value!r}: expected a cron schedule of 5 fields, e.g. '17 * * * *'")
    return value


def _urls(name: str) -> tuple[str, ...]:
    """A comma-separated list of http(s) URLs, in the given order without repeats; empty when unset."""
    values = tuple(dict.fromkeys(v.strip() for v in _env(name).split(",") if v.strip()))
    for value in values:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"{name}: expected http(s):// URLs, got {value!r}")
    return values


def _url(name: str) -> str | None:
    """One http(s) URL, without a trailing slash (links are built by appending paths); None when unset."""
    values = _urls(name)
    if len(values) > 1:
        raise ValueError(f"{name}: expected one http(s):// URL, got {len(values)}")
    return values[0].rstrip("/") if values else None


_AGE = re.compile(r"([0-9]+)([dhm])")
_AGE_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h`` or ``90m`` (a whole number and one unit, more than zero)."""
    match = _AGE.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not an age: expected a whole number of days, hours or minutes, "
                         "e.g. 30d, 12h or 90m")
    return int(match[1]) * _AGE_UNITS[match[2]]


def _age(name: str) -> str | None:
    """An optional age, validated here and kept as written (job config and logs show it so)."""
    value = _optional(name)
    if value is not None:
        try:
            parse_age(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return value


def _broker_url(name: str) -> str | None:
    value = _optional(name)
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.netloc:
            raise ValueError(f"{name}: expected a redis://host:port/db URL, got {value!r}")
        if not (parts.path.lstrip("/") or "0").isdigit():
            raise ValueError(f"{name}: the database must be a number, got {value!r}")
    return value


def _lease(name: str) -> tuple[str, int] | None:
    value = _optional(name)
    if value is None:
        return None
    worker, _, epoch = value.rpartition(":")
    if not worker or not epoch.isdigit():
        raise ValueError(f"{name}={value!r}: expected <worker>:<epoch>")
    return worker, int(epoch)


def _names(name: str, default: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip() for v in _env(name, default).split(",") if v.strip()))
    if not values or any(not re.fullmatch(r"[A-Za-z0-9_.-]+", v) for v in values):
        raise ValueError(f"{name}: expected comma-separated names of letters, digits, '.', '_' or '-'")
    return values


def _database_url(name: str) -> str | None:
    value = _optional(name)
    if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{name}: expected a postgresql:// URL, got scheme {urlsplit(value).scheme!r}")
    return value


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
    api_token: str | None = field(repr=False)
    run_launcher: str  # "warm" (our pool, the default) or "stock" (Dagster's DefaultRunLauncher)
    app_database_url: str | None = None  # resolved by `up` for its processes; wins over the rest
    dagster_database_url: str | None = None
    dagster_home: Path = REPO_ROOT / "dagster_home"
    dagster_url_override: str | None = None  # DAGSTER_URL: the webserver runs elsewhere
    pool_socket_override: Path | None = None
    pool_max_running: int = 4
    soak_cron: str = "17 * * * *"
    # Retention (pipelines.orchestration.retention): off unless an age is set.
    prune_older_than: str | None = None
    prune_cron: str = "23 3 * * *"
    soak_prune_older_than: str | None = None
    soak_prune_cron: str = "53 3 * * *"
    # OC modes a run request may choose: record (writes fixtures, calls the provider) and live
    # (calls the provider) are the operator's to enable; replay only by default.
    oc_modes: tuple[str, ...] = ("replay",)
    oc_base_url: str | None = None
    oc_model: str | None = None
    oc_api_key: str | None = field(default=None, repr=False)
    oc_timeout_s: float = 60.0
    oc_max_retries: int = 3
    oc_dialect: str = "auto"
    oc_max_tokens: int | None = None
    oc_model_port: int = 6001
    oc_model_threads: int = 2
    alert_urls: tuple[str, ...] = ()  # empty: alerts off
    alert_secret: str | None = field(default=None, repr=False)
    alert_timeout_s: float = 5.0
    # OpenTelemetry traces (pipelines/telemetry.py): on only when an OTLP endpoint is configured.
    tracing: bool = False
    log_format: str = "json"  # pipelines/logs.py
    broker_url_override: str | None = None
    workers: int = 0
    worker_name: str = "worker"
    worker_concurrency: int = 1
    worker_queues: tuple[str, ...] = ("dagster",)
    lease_ttl_s: float = 10.0
    worker_lease: tuple[str, int] | None = None  # (worker, epoch): set only inside a worker host

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
    def oc_embedded_model(self) -> bool:
        """Live and record modes use the embedded model server: no other provider is configured."""
        return self.oc_base_url is None

    @property
    def oc_model_url(self) -> str:
        """The embedded model server's OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.oc_model_port}/v1"

    @property
    def pool_socket(self) -> Path:
        return self.pool_socket_override or self.run_dir / "pool.sock"

    @property
    def broker_port(self) -> int:
        """The embedded Redis: PORT+4000, beside the Dagster ports PORT+1000 and PORT+2000."""
        return self.api_port + 4000

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url_override is None

    @property
    def broker_url(self) -> str:
        return self.broker_url_override or f"redis://127.0.0.1:{self.broker_port}/0"

    @property
    def result_backend_url(self) -> str:
        """The broker's server, next database number: Celery's task states (run monitoring reads them)."""
        parts = urlsplit(self.broker_url)
        db_no = int(parts.path.lstrip("/") or 0)
        return urlunsplit((parts.scheme, parts.netloc, f"/{db_no + 1}", parts.query, parts.fragment))

    @property
    def dagster_ui_url(self) -> str:
        return self.dagster_url_override or f"http://127.0.0.1:{self.dagster_ui_port}"


def _tracing() -> bool:
    """The standard ``OTEL_*`` variables decide: an OTLP endpoint set, the SDK not disabled and the
    traces exporter not ``none`` (the only one the harness installs is OTLP/HTTP)."""
    endpoint = _optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _optional("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"OTEL_EXPORTER_OTLP_ENDPOINT: expected an http(s):// URL, got {endpoint!r}")
    disabled = _env("OTEL_SDK_DISABLED", "false").lower() == "true"
    exporter = _env("OTEL_TRACES_EXPORTER", "otlp").lower()
    if exporter not in ("otlp", "none"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter!r}: expected otlp or none")
    return endpoint is not None and not disabled and exporter == "otlp"


def load() -> Settings:
    """Read and validate every variable; a bad value raises ValueError naming it."""
    api_port = _port("PORT", 3001)
    socket = _optional("HARNESS_POOL_SOCKET")
    alert_urls, alert_secret = _urls("HARNESS_ALERT_URLS"), _optional("HARNESS_ALERT_SECRET")
    if alert_urls and not alert_secret:  # an unsigned alert could not be told from a forged one
        raise ValueError("HARNESS_ALERT_SECRET must be set when HARNESS_ALERT_URLS is")
    # The other ports follow PORT, so two stacks started with different PORTs never collide.
    return Settings(
        data_dir=Path(_env("HARNESS_DATA_DIR", str(REPO_ROOT / ".data"))).resolve(),
        external_database_url=_database_url("DATABASE_URL"),
        api_port=api_port,
        dagster_ui_port=_port("DAGSTER_PORT", api_port + 1000),
        dagster_grpc_port=_port("DAGSTER_GRPC_PORT", api_port + 2000),
        dagster_url_override=_url("DAGSTER_URL"),
        api_token=_optional("API_TOKEN"),
        run_launcher=_choice("HARNESS_RUN_LAUNCHER", RUN_LAUNCHERS),
        app_database_url=_database_url("APP_DATABASE_URL"),
        dagster_database_url=_database_url("DAGSTER_DATABASE_URL"),
        dagster_home=Path(_env("DAGSTER_HOME", str(REPO_ROOT / "dagster_home"))),
        pool_socket_override=Path(socket) if socket else None,
        pool_max_running=_int("HARNESS_POOL_MAX_RUNNING", 4, 1, 256),
        soak_cron=_cron("HARNESS_SOAK_CRON", "17 * * * *"),
        prune_older_than=_age("HARNESS_PRUNE_OLDER_THAN"),
        prune_cron=_cron("HARNESS_PRUNE_CRON", "23 3 * * *"),
        soak_prune_older_than=_age("HARNESS_SOAK_PRUNE_OLDER_THAN"),
        soak_prune_cron=_cron("HARNESS_SOAK_PRUNE_CRON", "53 3 * * *"),
        oc_modes=_choices("HARNESS_OC_MODES", OC_MODES, default=("replay",)),
        oc_base_url=_optional("OC_BASE_URL"),
        oc_model=_optional("OC_MODEL"),
        oc_api_key=_optional("OC_API_KEY"),
        oc_timeout_s=_seconds("OC_TIMEOUT_S", 60.0),
        oc_max_retries=_int("OC_MAX_RETRIES", 3, 0, 20),
        oc_dialect=_choice("OC_DIALECT", OC_DIALECTS),
        oc_max_tokens=_int("OC_MAX_TOKENS", 0, 16, 65536) if _optional("OC_MAX_TOKENS") else None,
        oc_model_port=_port("OC_MODEL_PORT", api_port + 3000),
        oc_model_threads=_int("OC_MODEL_THREADS", 2, 1, 256),
        alert_urls=alert_urls,
        alert_secret=alert_secret,
        alert_timeout_s=_seconds("HARNESS_ALERT_TIMEOUT_S", 5.0),
        tracing=_tracing(),
        log_format=_choice("HARNESS_LOG_FORMAT", LOG_FORMATS),
        broker_url_override=_broker_url("BROKER_URL"),
        workers=_int("WORKERS", 0, 0, 64),
        worker_name=_names("HARNESS_WORKER_NAME", f"worker-{os.uname().nodename}")[0],
        worker_concurrency=_int("HARNESS_WORKER_CONCURRENCY", 1, 1, 256),
        worker_queues=_names("HARNESS_WORKER_QUEUES", "dagster"),
        lease_ttl_s=_seconds("HARNESS_LEASE_TTL_S", 10.0),
        worker_lease=_lease("HARNESS_WORKER_LEASE"),
    )


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| variable | default | what |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.what} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
