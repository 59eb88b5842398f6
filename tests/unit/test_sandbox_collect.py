"""Collector, output capture and contract behaviour of the sandbox that needs no isolation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import contracts
from pipelines.sandbox import supervise
from pipelines.sandbox.collect import collect_files, decode_output, decode_text
from pipelines.sandbox.config import CollectCaps, Limits
from pipelines.sandbox.errors import ArtifactTooLarge, SandboxError
from pipelines.sandbox.workdir import checked_relpath

CAPS = CollectCaps()


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def result_with(files: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "exitCode": 0, "stdout": "", "stderr": "", "stdoutTruncated": False, "stderrTruncated": False,
        "timedOut": False, "durationMs": 1, "files": files, "filesTruncated": False, "skipped": [],
        "isolation": {"backend": "bwrap", "enforced": ["net"]},
    }
    doc.update(over)
    return doc


def test_paths_are_relative_slash_separated_and_sorted_by_full_path(tmp_path: Path) -> None:
    for rel in ("b.txt", "d/e/z", "d-a", "a/b/c.txt", "A.txt"):
        write(tmp_path, rel, b"x")
    got = [f["path"] for f in collect_files(tmp_path, CAPS).files]
    # Sorted as whole strings: "d-a" < "d/e/z" because '-' < '/', which a per-directory walk would get wrong.
    assert got == ["A.txt", "a/b/c.txt", "b.txt", "d-a", "d/e/z"]


def test_text_line_endings_normalised_but_hash_is_of_raw_bytes(tmp_path: Path) -> None:
    raw = b"one\r\ntwo\rthree\n"
    write(tmp_path, "t.txt", raw)
    (entry,) = collect_files(tmp_path, CAPS).files
    assert entry == {"path": "t.txt", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "content": "one\ntwo\nthree\n"}


@pytest.mark.parametrize("data", [b"\x00\x01\x02", b"caf\xe9 latin-1", b"\x89PNG\r\n\x1a\n"])
def test_binary_files_have_hash_but_no_content(tmp_path: Path, data: bytes) -> None:
    write(tmp_path, "blob", data)
    (entry,) = collect_files(tmp_path, CAPS).files
    assert entry["omitted"] == "binary" and "content" not in entry
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_symlinks_are_skipped_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret"
    secret.write_text("TOP-SECRET")
    work = tmp_path / "work"
    (work / "real").mkdir(parents=True)
    (work / "real" / "f").write_text("ok")
    (work / "leak").symlink_to(secret)
    (work / "dirlink").symlink_to(tmp_path)
    (work / "dangling").symlink_to("/nonexistent")
    got = collect_files(work, CAPS)
    assert [f["path"] for f in got.files] == ["real/f"]
    assert got.skipped == [
        {"path": "dangling", "reason": "symlink"},
        {"path": "dirlink", "reason": "symlink"},
        {"path": "leak", "reason": "symlink"},
    ]
    assert "TOP-SECRET" not in repr(got)


def test_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    got = collect_files(tmp_path, CAPS)
    assert got.files == [] and got.skipped == [{"path": "pipe", "reason": "special"}]


def test_file_count_cap_keeps_the_first_in_canonical_order(tmp_path: Path) -> None:
    for i in range(10):
        write(tmp_path, f"f{i:02}", b"x")
    got = collect_files(tmp_path, CollectCaps(max_files=3))
    assert [f["path"] for f in got.files] == ["f00", "f01", "f02"]
    assert got.truncated is True


def test_total_size_cap_stops_collection(tmp_path: Path) -> None:
    write(tmp_path, "a", b"\0" * 700_000)  # binary: text this large is over the artifact cap
    write(tmp_path, "b", b"\0" * 700_000)
    got = collect_files(tmp_path, CollectCaps(max_total_mb=1))
    assert [f["path"] for f in got.files] == ["a"]
    assert got.truncated is True


def test_text_over_the_artifact_cap_is_an_error_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "ok.txt", b"x" * 1024)  # exactly the cap: stored
    write(tmp_path, "sub/big.txt", b"line\n" * 1000)
    with pytest.raises(ArtifactTooLarge, match=r"'sub/big.txt' is 5000 bytes; a stored artifact may have at most 1024"):
        collect_files(tmp_path, CollectCaps(max_content_kb=1))


def test_binary_over_the_artifact_cap_is_listed_not_stored(tmp_path: Path) -> None:
    write(tmp_path, "big.bin", b"\0" * 5000)
    (entry,) = collect_files(tmp_path, CollectCaps(max_content_kb=1)).files
    assert entry["omitted"] == "binary" and entry["size"] == 5000


def test_walk_entry_budget_bounds_collection(tmp_path: Path) -> None:
    for i in range(50):
        write(tmp_path, f"d{i}/f", b"x")
    got = collect_files(tmp_path, CollectCaps(max_entries=20))
    assert got.truncated is True
    assert len(got.files) <= 20


def test_not_truncated_when_within_caps(tmp_path: Path) -> None:
    write(tmp_path, "a", b"a")
    assert collect_files(tmp_path, CAPS).truncated is False


def test_decode_text_and_output() -> None:
    assert decode_text(b"a\r\nb") == "a\nb"
    assert decode_text(b"a\x00b") is None
    assert decode_output(b"ok\xff\xfe") == "ok\ufffd\ufffd"
    assert decode_output(b"ok\xff\xfe") == decode_output(b"ok\xff\xfe")


def test_output_capture_flags_truncation() -> None:
    done = supervise.run(
        ["/bin/sh", "-c", "head -c 5000 /dev/zero; printf err >&2"],
        env={}, cwd=None, timeout_s=20, keep_bytes=1024, reap=lambda: None,
    )
    assert len(done.stdout) == 1024 and done.stdout_truncated is True
    assert done.stderr == b"err" and done.stderr_truncated is False
    assert done.exit_code == 0 and done.timed_out is False


def test_collected_files_satisfy_result_contract(tmp_path: Path) -> None:
    write(tmp_path, "t.txt", b"a\r\n")
    write(tmp_path, "bin", b"\x00")
    (tmp_path / "l").symlink_to("/etc/passwd")
    got = collect_files(tmp_path, CAPS)
    contracts.validate("sandbox-result", result_with(got.files, skipped=got.skipped))


def test_result_contract_rejects_unknown_fields_and_unknown_backends() -> None:
    with pytest.raises(contracts.ContractViolation) as err:
        contracts.validate("sandbox-result", result_with([], extra=1, isolation={"backend": "vm", "enforced": []}))
    pointers = [v.pointer for v in err.value.violations]
    assert pointers == sorted(pointers) and "/isolation/backend" in pointers and "" in pointers


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../b", "a//b", "./a", "a/", "a\\b"])
def test_job_contract_and_workdir_reject_escaping_paths(path: str) -> None:
    with pytest.raises(contracts.ContractViolation):
        contracts.validate("sandbox-job", {"command": "true", "files": [{"path": path, "content": ""}]})
    if path not in ("a/", "a\\b"):
        with pytest.raises(SandboxError):
            checked_relpath(path)


def test_job_limits_merge_over_defaults() -> None:
    merged = Limits().merged({"cpu_s": 3})
    assert merged.cpu_s == 3 and merged.memory_mb == Limits().memory_mb


def test_scripted_sandbox_is_honest_and_contract_checked() -> None:
    from pipelines.sandbox.resource import ScriptedSandbox

    sandbox = ScriptedSandbox([{"stdout": "hi\n", "exitCode": 2}, {"isolation": {"backend": "bwrap", "enforced": []}}])
    result = sandbox.run({"command": ["echo", "hi"]})
    assert (result["exitCode"], result["stdout"], result["isolation"]) == (2, "hi\n", {"backend": "scripted", "enforced": []})
    with pytest.raises(ValueError, match="must not claim"):
        sandbox.run({"command": "true"})
    with pytest.raises(contracts.ContractViolation):
        sandbox.run({"command": "true", "unknown": 1})
    with pytest.raises(SandboxError, match="no result left"):
        sandbox.run({"command": "true"})
    assert ScriptedSandbox([{"bogus": 1}]).status()["backend"] == "scripted"
    with pytest.raises(contracts.ContractViolation):
        ScriptedSandbox([{"bogus": 1}]).run({"command": "true"})
