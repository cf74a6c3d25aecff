"""The README's main job: the agent demo, fast mode (the first question, both configurations)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

DEMO = Path(__file__).resolve().parents[1] / "examples" / "agent_demo.py"


@pytest.mark.timeout(600)  # a bound for hangs, not a speed test
def test_agent_demo_runs_the_plain_agent(capsys):
    demo = runpy.run_path(str(DEMO), run_name="agent_demo")
    summary = demo["main"](["--fast"])
    out = capsys.readouterr().out
    assert len(summary) == 2, out  # one base, then six buckets
    assert "(stopped:" not in out  # every agent loop ended by itself, within its recursion limit
    answers = [line for line in out.splitlines() if line.startswith("  answer:")]
    assert len(answers) == 2 and not any("<tool_" in a for a in answers), out
    for question, label, steps, tools_ok, done, valid, n_calls, seconds in summary:
        assert valid == n_calls >= 1, out  # the model called a tool by itself, with arguments that parse
    question, label, steps, tools_ok, done, valid, n_calls, seconds = summary[1]
    assert label.startswith("6 buckets") and tools_ok, out  # the default settings reach the right tool
    assert "call get_stock_level(" in out
