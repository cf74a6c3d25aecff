"""The README's main job: the agent demo, fast mode (the first question, both configurations)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

DEMO = Path(__file__).resolve().parents[1] / "examples" / "agent_demo.py"


@pytest.mark.timeout(600)  # ~150 s alone on 2 cores; a bound for hangs, not a speed test
def test_agent_demo_reaches_the_right_tools(capsys):
    demo = runpy.run_path(str(DEMO), run_name="agent_demo")
    summary = demo["main"](["--fast"])
    out = capsys.readouterr().out
    assert len(summary) == 2  # one base, then six buckets
    for question, label, right_tools, parsed, n_calls, seconds in summary:
        assert right_tools, (label, out)
        assert parsed >= 1 and n_calls == 3
    assert "call get_order(" in out and "call convert_currency(" in out
