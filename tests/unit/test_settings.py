from pathlib import Path

import pytest

from pipelines.settings import database_name, load, sqlalchemy_psycopg2, with_database


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


def test_oc_recordings_live_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    assert load().oc_recordings_dir == tmp_path / "oc-fixtures"
