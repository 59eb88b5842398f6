import ast
from pathlib import Path

import pytest

from pipelines.settings import (
    REPO_ROOT,
    database_name,
    load,
    markdown_table,
    parse_age,
    sqlalchemy_psycopg2,
    with_database,
)


def test_with_database_keeps_server_and_query() -> None:
    url = "postgresql://postgres@/harness?host=/tmp/pg"
    assert with_database(url, "x_dagster") == "postgresql://postgres@/x_dagster?host=/tmp/pg"
    assert database_name(url) == "harness"


def test_dagster_urls_use_psycopg2_with_empty_password() -> None:
    assert sqlalchemy_psycopg2("postgresql://postgres@/d?host=/tmp/pg") == "postgresql+psycopg2://postgres:@/d?host=%2Ftmp%2Fpg"
    assert sqlalchemy_psycopg2("postgresql://u:p@db:5433/d") == "postgresql+psycopg2://u:p@db:5433/d"


def test_ports_follow_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DAGSTER_PORT", "DAGSTER_GRPC_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PORT", "3004")
    s = load()
    assert (s.api_port, s.dagster_ui_port, s.dagster_grpc_port) == (3004, 4004, 5004)


@pytest.mark.parametrize("bad", ["abc", "0", "70000"])
def test_bad_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("PORT", bad)
    with pytest.raises(ValueError, match="PORT"):
        load()


@pytest.mark.parametrize(("name", "value", "says"), [
    ("HARNESS_RUN_LAUNCHER", "kubernetes", "expected one of warm, stock, celery"),
    ("HARNESS_POOL_MAX_RUNNING", "0", "out of range"),
    ("HARNESS_SOAK_CRON", "hourly", "cron schedule of 5 fields"),
    ("OC_TIMEOUT_S", "soon", "not a number of seconds"),
    ("OC_MAX_RETRIES", "-1", "out of range"),
    ("DATABASE_URL", "mysql://db/x", "postgresql:// URL"),
    ("HARNESS_ALERT_URLS", "ftp://hooks.example/x", "http(s):// URLs"),
    ("HARNESS_ALERT_TIMEOUT_S", "0", "more than 0 seconds"),
    ("HARNESS_PRUNE_OLDER_THAN", "30 days", "e.g. 30d, 12h or 90m"),
    ("HARNESS_SOAK_PRUNE_CRON", "daily", "cron schedule of 5 fields"),
    ("DAGSTER_URL", "dagster-webserver:3000", "http(s):// URL"),
    ("DAGSTER_URL", "http://a:3000,http://b:3000", "one http(s):// URL"),
])
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name) as caught:
        load()
    assert says in str(caught.value)


def test_the_readme_settings_table_is_the_declaration() -> None:
    """`python -m pipelines.settings` prints the table; the README carries it verbatim."""
    assert markdown_table() in (REPO_ROOT / "README.md").read_text()


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "tok-secret")
    monkeypatch.setenv("OC_API_KEY", "sk-secret")
    monkeypatch.setenv("HARNESS_ALERT_URLS", "https://hooks.example/a")
    monkeypatch.setenv("HARNESS_ALERT_SECRET", "hmac-secret")
    text = repr(load())
    assert "tok-secret" not in text and "sk-secret" not in text and "hmac-secret" not in text


def test_alerts_are_off_by_default_and_need_a_secret_when_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_ALERT_URLS", raising=False)
    monkeypatch.delenv("HARNESS_ALERT_SECRET", raising=False)
    assert load().alert_urls == ()
    monkeypatch.setenv("HARNESS_ALERT_URLS", " https://a.example/h, http://127.0.0.1:9/h ,https://a.example/h")
    with pytest.raises(ValueError, match="HARNESS_ALERT_SECRET"):
        load()
    monkeypatch.setenv("HARNESS_ALERT_SECRET", "k")
    assert load().alert_urls == ("https://a.example/h", "http://127.0.0.1:9/h")


def _environ_reads(source: str) -> list[int]:
    """Lines where ``source`` reads the process environment (``os.environ`` other than as an
    assignment target, ``os.getenv``, ``os.environb``)."""
    tree = ast.parse(source)
    stores = {id(node.value) for node in ast.walk(tree)
              if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)}
    return sorted(node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
            and node.attr in ("environ", "getenv", "environb", "getenvb") and id(node) not in stores)


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {str(path.relative_to(REPO_ROOT)): lines
               for folder in ("pipelines", "api") for path in sorted((REPO_ROOT / folder).rglob("*.py"))
               if path.name != "settings.py" and (lines := _environ_reads(path.read_text()))}
    assert readers == {}, "read settings through pipelines.settings.load(), not os.environ"


def test_the_static_check_sees_reads_and_lets_a_child_setting_pass() -> None:
    source = "import os\nos.environ['PGAPPNAME'] = 'w'\nx = os.environ.get('B')\ny = {**os.environ}\nz = os.getenv('C')\n"
    assert _environ_reads(source) == [3, 4, 5]


def test_oc_modes_default_to_replay_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_OC_MODES", raising=False)
    assert load().oc_modes == ("replay",)
    monkeypatch.setenv("HARNESS_OC_MODES", " replay, record ,replay")
    assert load().oc_modes == ("replay", "record")


@pytest.mark.parametrize("bad", ["replay,guess", ",", "REPLAY"])
def test_bad_oc_modes_name_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("HARNESS_OC_MODES", bad)
    with pytest.raises(ValueError, match="HARNESS_OC_MODES"):
        load()


def test_dagster_url_follows_the_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DAGSTER_PORT", "DAGSTER_URL"):  # a stack's own environment may set them
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "3100")
    assert load().dagster_ui_url == "http://127.0.0.1:4100"
    monkeypatch.setenv("DAGSTER_URL", "http://dagster-webserver.harness.svc:3000/")
    assert load().dagster_ui_url == "http://dagster-webserver.harness.svc:3000"


def test_oc_recordings_live_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    assert load().oc_recordings_dir == tmp_path / "oc-fixtures"


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 12 * 3600), ("90m", 90 * 60), (" 1d ", 86400)])
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "30", "d", "0d", "-1d", "1.5h", "30s", "2w", "1d12h", "30D"])
def test_a_bad_age_says_what_an_age_looks_like(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a whole number of days, hours or minutes, e.g. 30d, 12h or 90m"):
        parse_age(bad)


def test_retention_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HARNESS_PRUNE_OLDER_THAN", "HARNESS_SOAK_PRUNE_OLDER_THAN"):
        monkeypatch.delenv(var, raising=False)
    assert (load().prune_older_than, load().soak_prune_older_than) == (None, None)
    monkeypatch.setenv("HARNESS_PRUNE_OLDER_THAN", "30d")
    assert load().prune_older_than == "30d"


def test_broker_follows_port_and_results_take_the_next_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKER_URL", raising=False)
    monkeypatch.setenv("PORT", "3311")
    s = load()
    assert (s.broker_port, s.broker_url, s.result_backend_url) == (
        7311, "redis://127.0.0.1:7311/0", "redis://127.0.0.1:7311/1")
    monkeypatch.setenv("BROKER_URL", "redis://broker.example:6379/4")
    s = load()
    assert (s.embedded_broker, s.result_backend_url) == (False, "redis://broker.example:6379/5")


@pytest.mark.parametrize(("name", "value"), [("BROKER_URL", "amqp://x"), ("BROKER_URL", "redis://h/x"),
                                             ("HARNESS_WORKER_LEASE", "w1"), ("HARNESS_WORKER_QUEUES", "a b"),
                                             ("WORKERS", "-1"), ("HARNESS_LEASE_TTL_S", "0")])
def test_bad_celery_settings_name_their_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        load()


def test_worker_lease_is_name_and_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_WORKER_LEASE", "w-1:7")
    assert load().worker_lease == ("w-1", 7)
