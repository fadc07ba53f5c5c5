"""The structure stays as designed: the import-linter contracts in pyproject.toml hold (the LRS
in layers, the xAPI domain pure, use cases and the pipeline reaching stores and sinks only
through their ports, sinks independent of the pipeline), and the relay and replay hold no SQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_relay_and_the_replay_hold_no_sql():
    for name in ("relay.py", "replay.py"):
        text = (ROOT / "streams" / name).read_text(encoding="utf-8")
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|NOTIFY)\b", text), f"SQL in streams/{name}"


def test_no_sink_module_imports_the_pipeline():
    for path in (ROOT / "sinks").glob("*.py"):
        assert not re.search(r"^\s*(from|import) streams\b", path.read_text(encoding="utf-8"), re.M), (
            path.name
        )
