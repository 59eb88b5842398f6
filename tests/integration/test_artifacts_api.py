"""Reading a run's artifacts over real HTTP: the list, the bytes with their media type, a strong
ETag honouring If-None-Match, single byte ranges (206, 416), exact-name lookup, and reads in
slices (a reader never holds the whole artifact)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import psycopg
import pytest

import contracts
from pipelines import clock
from pipelines.store import artifacts, repo

BIG = bytes(range(256)) * 1000  # 256,000 bytes: four slices, binary
TEXT = "héllo\n".encode()


@pytest.fixture
def run_id(app_db_url: str) -> str:
    """A run whose steps stored: plan.json, a text file, a binary one, an empty one."""
    with psycopg.connect(app_db_url, autocommit=True) as conn, conn.transaction():
        intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), idempotency_key=None,
                                          body={"goal": "g", "inputs": {}, "constraints": {}, "connectors": []})
        run, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=None, options={},
                                 idempotency_key=None)
        conn.execute("INSERT INTO app.run_steps (run_id, step, status, output, dagster_run_id, started_at, "
                     "finished_at) VALUES (%s, 'sandbox', 'succeeded', '{}', 'd', %s, %s)",
                     (run, clock.now(), clock.now()))
        for name, content in [("plan.json", b'{"a":1}'), ("sandbox/say/files/out.txt", TEXT),
                              ("sandbox/say/files/blob", BIG), ("sandbox/say/stdout", b"")]:
            repo.insert_artifact(conn, run_id=run, step="sandbox", name=name, content=content)
    return run


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_list_names_sizes_digests_and_media_types(client: httpx.Client, run_id: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts")
    assert resp.status_code == 200
    body = contracts.validate("artifact-list", resp.json())
    assert body["artifacts"] == [
        {"name": "plan.json", "size": 7, "sha256": _sha(b'{"a":1}'), "mediaType": "application/json"},
        {"name": "sandbox/say/files/blob", "size": len(BIG), "sha256": _sha(BIG),
         "mediaType": "application/octet-stream"},
        {"name": "sandbox/say/files/out.txt", "size": len(TEXT), "sha256": _sha(TEXT),
         "mediaType": "text/plain; charset=utf-8"},
        {"name": "sandbox/say/stdout", "size": 0, "sha256": _sha(b""), "mediaType": "text/plain; charset=utf-8"},
    ]


def test_bytes_come_with_type_length_and_a_strong_etag(client: httpx.Client, run_id: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/out.txt")
    assert resp.status_code == 200
    assert resp.content == TEXT
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["content-length"] == str(len(TEXT))
    assert resp.headers["etag"] == f'"{_sha(TEXT)}"'
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["x-content-type-options"] == "nosniff"
    empty = client.get(f"/runs/{run_id}/artifacts/sandbox/say/stdout")
    assert (empty.status_code, empty.content, empty.headers["content-length"]) == (200, b"", "0")


def test_large_artifact_streams_whole_and_is_read_in_slices(client: httpx.Client, run_id: str,
                                                            app_db_url: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/blob")
    assert resp.status_code == 200
    assert resp.content == BIG and resp.headers["content-type"] == "application/octet-stream"
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        found = artifacts.find(conn, run_id, "sandbox/say/files/blob")
        assert found is not None

        def connection() -> Any:
            return psycopg.connect(app_db_url, autocommit=True)

        slices = list(artifacts.read(connection, run_id, found, 0, found.size - 1))
    assert [len(s) for s in slices] == [artifacts.SLICE_BYTES] * 3 + [len(BIG) - 3 * artifacts.SLICE_BYTES]
    assert b"".join(slices) == BIG


def test_if_none_match_answers_304(client: httpx.Client, run_id: str) -> None:
    url = f"/runs/{run_id}/artifacts/plan.json"
    tag = client.get(url).headers["etag"]
    for header in (tag, f'"other", W/{tag}', "*"):
        resp = client.get(url, headers={"If-None-Match": header})
        assert (resp.status_code, resp.content, resp.headers["etag"]) == (304, b"", tag), header
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 99),
    ("bytes=100000-", 100000, len(BIG) - 1),
    ("bytes=-10", len(BIG) - 10, len(BIG) - 1),
    ("bytes=255990-999999", 255990, len(BIG) - 1),
    ("bytes=65530-65545", 65530, 65545),  # across a slice boundary
])
def test_a_byte_range_is_a_206(client: httpx.Client, run_id: str, header: str, start: int, end: int) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/blob", headers={"Range": header})
    assert resp.status_code == 206
    assert resp.content == BIG[start:end + 1]
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(BIG)}"
    assert resp.headers["content-length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=256000-", "bytes=999999-1000000", "bytes=-0"])
def test_an_unsatisfiable_range_is_a_416_envelope(client: httpx.Client, run_id: str, header: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/blob", headers={"Range": header})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(BIG)}"
    assert contracts.validate("error", resp.json())["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("headers", [{"Range": "bytes=5-1"}, {"Range": "lines=1-2"}, {"Range": "bytes=0-1,4-5"},
                                     {"Range": "bytes=0-1", "If-Range": '"stale"'}])
def test_a_range_not_understood_or_stale_sends_everything(client: httpx.Client, run_id: str,
                                                          headers: dict[str, str]) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/out.txt", headers=headers)
    assert (resp.status_code, resp.content) == (200, TEXT)


def test_if_range_with_the_current_etag_honours_the_range(client: httpx.Client, run_id: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/sandbox/say/files/out.txt",
                      headers={"Range": "bytes=0-0", "If-Range": f'"{_sha(TEXT)}"'})
    assert (resp.status_code, resp.content) == (206, TEXT[:1])


# httpx removes a bare ``..`` segment itself; with the slash encoded it reaches the server, which
# decodes it into the name ``sandbox/say/files/../files/out.txt``.
@pytest.mark.parametrize("name", ["nope", "plan.jso", "PLAN.JSON", "sandbox/say/files/..%2Ffiles/out.txt",
                                  "sandbox/say/files/out.txt/", "%2e%2e%2fplan.json", "/plan.json"])
def test_names_are_exact_keys(client: httpx.Client, run_id: str, name: str) -> None:
    resp = client.get(f"/runs/{run_id}/artifacts/{name}")
    assert resp.status_code == 404
    assert contracts.validate("error", resp.json())["error"]["code"] == "not_found"


def test_unknown_run_and_bad_ids_are_envelopes(client: httpx.Client, app_db_url: str) -> None:
    unknown = "run_" + "0" * 32
    for url in (f"/runs/{unknown}/artifacts", f"/runs/{unknown}/artifacts/plan.json"):
        assert client.get(url).json()["error"]["code"] == "not_found"
    for url in ("/runs/run_XYZ/artifacts", "/runs/run_XYZ/artifacts/plan.json"):
        resp = client.get(url)
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_id")
