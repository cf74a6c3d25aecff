"""``attention-buckets bench decisions``: the data format, the scoring and calibration, and that
the margin it measures is what decides a real call (tiny random Llama, embedded tokenizer)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_BASES
from langchain_core.messages import convert_to_messages
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.bench.decisions import calibrate, load_rows, margins, report, score
from langchain_attention_buckets.chat.decision import ToolDecision
from langchain_attention_buckets.cli import main


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [convert_to_openai_tool(multiply)]
CALL = {"id": "c1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 2, "b": 3}'}}
ROWS = [
    {"messages": [{"role": "user", "content": "What is 2 times 3?"}], "tools": TOOLS, "label": "call", "split": "dev"},
    {"messages": [{"role": "user", "content": "Say hi."}], "tools": TOOLS, "label": "answer", "split": "dev"},
    {"messages": [{"role": "user", "content": "What is 4 times 5?"}], "tools": TOOLS, "label": "call", "split": "test"},
    {
        "messages": [
            {"role": "user", "content": "What is 2 times 3?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "6"},
        ],
        "tools": TOOLS,
        "label": "answer",
        "split": "test",
    },
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_are_checked(tmp_path):
    rows = load_rows(_write(tmp_path / "d.jsonl", ROWS))
    assert [r["id"] for r in rows] == ["line-1", "line-2", "line-3", "line-4"]
    no_split = [{k: v for k, v in ROWS[0].items() if k != "split"}]
    assert load_rows(_write(tmp_path / "n.jsonl", no_split))[0]["split"] in ("dev", "test")
    with pytest.raises(ValueError, match=r"d2.jsonl:1: label='maybe'; allowed: 'call', 'answer'"):
        load_rows(_write(tmp_path / "d2.jsonl", [{**ROWS[0], "label": "maybe"}]))
    with pytest.raises(ValueError, match="split='train'"):
        load_rows(_write(tmp_path / "d3.jsonl", [{**ROWS[0], "split": "train"}]))
    with pytest.raises(FileNotFoundError, match="--data"):
        load_rows(tmp_path / "missing.jsonl")


def test_score_and_calibrate():
    items = [(-1.0, "call"), (-3.0, "call"), (-4.0, "answer"), (-6.0, "answer"), (0.5, "call")]
    assert score(items, 0.0) == {
        "n": 5, "accuracy": 3 / 5, "balanced": (1 / 3 + 1) / 2, "call_right": [1, 3], "answer_right": [2, 2],
    }
    bias = calibrate(items)
    assert 3.0 < bias <= 4.0 and score(items, bias)["balanced"] == 1.0
    assert calibrate([(-1.0, "answer"), (-2.0, "answer")]) == 0.0  # already right: the smallest bias
    # one call the model is far from, four answers: balanced accuracy gives up three answers for it
    skewed = [(-3.0, "call"), (-1.0, "answer"), (-1.1, "answer"), (-1.2, "answer"), (-4.0, "answer")]
    assert calibrate(skewed, "accuracy") == 0.0 and calibrate(skewed, "balanced") == 3.25


def test_the_measured_margin_decides_the_call(tiny_chat_dir, tmp_path):
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=4)
    rows = load_rows(_write(tmp_path / "d.jsonl", ROWS))
    found = margins(rows, llm, tmp_path / "m.jsonl", "tiny", progress=False)
    assert [found[r["id"]]["state"] for r in rows] == ["before", "before", "before", "after"]
    for row in (rows[0], rows[3]):
        m = found[row["id"]]["margin"]
        messages = convert_to_messages(row["messages"])
        # room for a whole call: the grammar never opens a call it cannot close within max_tokens
        opens = llm.bind_tools(TOOLS, tool_call_bias=-m + 0.5, max_tokens=60).invoke(messages)
        stays = llm.bind_tools(TOOLS, tool_call_bias=-m - 0.5, max_tokens=60).invoke(messages)
        assert opens.tool_calls or opens.invalid_tool_calls, opens
        assert not (stays.tool_calls or stays.invalid_tool_calls), stays
    again = margins(rows, llm, tmp_path / "m.jsonl", "tiny", progress=False)  # from the cache
    assert again == found
    out = report(rows, found, ToolDecision(1.0, -1.0))
    assert out["after"]["default_bias"] == -1.0 and out["before"]["test_none"]["n"] == 1


def test_command_writes_its_report(tiny_chat_dir, tmp_path, capsys):
    data = _write(tmp_path / "d.jsonl", ROWS)
    out = tmp_path / "out"
    assert main(["bench", "decisions", "--model", tiny_chat_dir, "--data", str(data), "--configs", "one",
                 "--output", str(out), "--no-progress"]) == 0
    result = json.loads((out / "decisions.json").read_text())["results"]["one"]
    assert set(result) == {"before", "after"} and "test_chosen" in result["before"]
    assert "4 labelled conversations" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="allowed names are one, paper"):
        main(["bench", "decisions", "--model", tiny_chat_dir, "--data", str(data), "--configs", "six"])
