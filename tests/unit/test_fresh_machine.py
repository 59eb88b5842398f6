"""The fresh-machine proof's parsing (`mise run -f test:fresh` itself needs root and minutes).

These keep the proof and the README in step: if the Quick start stops being readable the way
scripts/fresh_machine.py reads it, CI says so before anyone runs the proof.
"""

from pathlib import Path

import pytest

from scripts.fresh_machine import Failed, apt_sources, debian_mirror, pytest_summary, quick_start, run_views

ROOT = Path(__file__).resolve().parents[2]


def test_readme_quick_start_is_readable() -> None:
    install, commands = quick_start((ROOT / "README.md").read_text())
    assert install == "npm install -g @jdxcode/mise"
    assert commands == ["mise run demo", "mise run check"]


def test_quick_start_strips_comments_and_requires_two_commands() -> None:
    readme = ("# x\n\n## Quick start\n\nInstall (`npm install -g @jdxcode/mise`).\n\n```bash\n"
              "# a comment line\nmise run a   # 1. first\n\nmise run b\n```\n\n## Next\n")
    assert quick_start(readme) == ("npm install -g @jdxcode/mise", ["mise run a", "mise run b"])
    with pytest.raises(Failed, match="has 1 commands"):
        quick_start(readme.replace("mise run b\n", ""))
    with pytest.raises(Failed, match="no '## Quick start'"):
        quick_start("# x\n## Other\n")


def test_apt_sources_one_line_and_deb822(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\n"
        "deb [signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n"
        "deb-src http://mirror.example/debian bookworm main\n"
        "deb https://deb.nodesource.com/node_20.x nodistro main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm-backports\nComponents: main\n"
        "Enabled: no\n")
    mirror, ours = debian_mirror(apt_sources(tmp_path))
    assert mirror == "http://mirror.example/debian"
    assert [e["suites"] for e in ours] == [["bookworm"], ["bookworm-security"]]
    with pytest.raises(Failed, match="serves 'bookworm'"):
        debian_mirror([{"uris": ["http://x"], "suites": ["trixie"], "components": ["main"]}])


def test_run_view_found_in_prefixed_output() -> None:
    output = ("[setup] $ bash scripts/setup.sh\n[demo] {\n[demo]   \"runId\": \"run_1\",\n"
              "[demo]   \"steps\": [{\"status\": \"failed\"}],\n[demo]   \"status\": \"succeeded\"\n[demo] }\n")
    assert [v["status"] for v in run_views(output)] == ["succeeded"]
    assert run_views("{\n  \"status\": \"succeeded\"\n}\n") == []  # not a RunView: no runId


def test_pytest_summary_counts() -> None:
    line, counts = pytest_summary("[test] ....\n[test] 2 failed, 453 passed, 3 warnings, 1 error in 301.2s\n") or ("", {})
    assert line == "2 failed, 453 passed, 3 warnings, 1 error in 301.2s"
    assert counts == {"failed": 2, "passed": 453, "warning": 3, "error": 1}
    assert pytest_summary("Success: no issues found in 45 source files\n") is None
