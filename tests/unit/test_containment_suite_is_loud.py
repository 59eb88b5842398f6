"""As any user but root, the sandbox containment suite fails and says how to run it: a skipped
security suite would leave `check` green with nothing contained proven (it used to skip)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "tests/integration/test_sandbox_containment.py"


def test_containment_suite_fails_loudly_when_not_root(tmp_path: Path) -> None:
    # A plugin pytest imports before collecting: the process then believes it is not root.
    (tmp_path / "not_root.py").write_text("import os\nos.geteuid = lambda: 1000\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "not_root", "-p", "no:cacheprovider", "-q", "-rfEs",
         f"{SUITE}::test_degraded_backend_refused_unless_allowed"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout, result.stdout  # an error at set-up: red, with the reason
    assert "needs root" in result.stdout and f"pytest {SUITE}" in result.stdout, result.stdout
