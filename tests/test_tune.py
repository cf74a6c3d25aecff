"""`attention-buckets tune`: budget, candidates, the choice rule, the search and its resume, the
preset it writes (which ChatAttentionBuckets accepts), end to end on a tiny random model."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.bench.configs import CONFIGS, BenchConfig
from langchain_attention_buckets.bench.tune import (
    Budget,
    candidates,
    choose,
    format_tune,
    parse_budget,
    run_tune,
)
from langchain_attention_buckets.chat.presets import builtin_presets
from langchain_attention_buckets.cli import main as cli_main


def qa_file(tmp_path, n_rows: int = 8, n_docs: int = 3) -> str:
    rows = []
    for i in range(n_rows):
        docs = [f"Note {i}.{j}: nothing here." for j in range(n_docs)]
        docs[1] = f"Note {i}.1: the answer to question {i} is Zed{i}."
        rows.append({"kind": "qa", "question": f"What is the answer to question {i}?", "documents": docs,
                     "gold": 1, "answers": [f"Zed{i}"], "split": "dev" if i % 2 == 0 else "test"})
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


class Fake(BaseChatModel):
    """Right when the answer's document is shown among `right_at` (0-based), else wrong; counts calls."""

    right_at: tuple[int, ...]
    calls: Any  # shared with the test (a list field would be copied)

    @property
    def _llm_type(self) -> str:
        return "fake"

    def _generate(self, messages, stop=None, run_manager=None, **kw):
        self.calls.append(1)
        prompt = messages[-1].content
        shown = [int(k) - 1 for k, text in re.findall(r"Document \[(\d+)\] ([^\n]*)", prompt) if "is Zed" in text][0]
        answer = re.search(r"is (Zed\d+)", prompt).group(1)
        reply = answer if shown in self.right_at else "I do not know."
        return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])


RIGHT = {"plain": (0,), "paper": (), "paper-max": (0, 1, 2), "paper-mean": (0, 1, 2)}


def factory(calls):
    return lambda config: Fake(right_at=RIGHT.get(config.name, ()), calls=calls)


KW = dict(configs="paper,paper-max", positions=[0, 2], samples=4, test_samples=4, own_base=lambda: 10000.0,
          progress=False, plots=False)


# ---- parts --------------------------------------------------------------------------


def test_parse_budget():
    assert parse_budget("200").calls == 200 and parse_budget("200 calls").calls == 200
    assert parse_budget("30m").seconds == 1800 and parse_budget("1.5min").seconds == 90
    assert parse_budget(None).calls is None and not parse_budget(None).spent()
    for bad in ("abc", "2.5", "10h", "-3"):
        with pytest.raises(ValueError, match=f"budget {re.escape(repr(bad))}: allowed N calls"):
            parse_budget(bad)


def test_minutes_budget_uses_the_clock():
    now = [100.0]
    b = Budget(seconds=60, clock=lambda: now[0])
    b.begin()
    assert not b.spent()
    now[0] += 59.9
    assert not b.spent()
    now[0] += 0.1
    assert b.spent() and str(b) == "1 minutes"


def test_candidates():
    default = candidates()
    assert default[0].name == "plain" and all(not c.reorder for c in default)
    assert {c.name for c in default} == {n for n, c in CONFIGS.items() if not c.reorder}  # the whole registry
    assert [c.name for c in candidates("paper-max")] == ["plain", "paper-max"]
    with pytest.raises(ValueError, match="plain\\+reorder: reorder=True is not a chat-model setting"):
        candidates("paper,plain+reorder")


def summary(means: dict, secs: dict) -> dict:
    return {"seconds_per_call": secs,
            "metrics": {"correct": {"configs": {n: {"mean": {"accuracy": m}} for n, m in means.items()}}}}


def test_choose_rule():
    cs = [BenchConfig("plain"), BenchConfig("a", bases="paper"), BenchConfig("b", bases="paper", aggregation="max")]
    assert choose(summary({"plain": 0.5, "a": 0.6, "b": 0.55}, {}), cs, "correct") == "a"
    assert choose(summary({"plain": 0.6, "a": 0.6, "b": 0.6}, {"plain": 9.0}), cs, "correct") == "plain"
    assert choose(summary({"plain": 0.5, "a": 0.6, "b": 0.6}, {"a": 2.0, "b": 1.0}), cs, "correct") == "b"
    assert choose(summary({"plain": 0.5, "a": 0.6, "b": 0.6}, {"a": 1.0, "b": 1.0}), cs, "correct") == "a"


# ---- the search, budget and resume --------------------------------------------------


def test_tune_chooses_tests_and_writes_a_preset(tmp_path):
    calls: list = []
    res = run_tune(qa_file(tmp_path), factory=factory(calls), output=tmp_path / "out", **KW)
    assert res["chosen"] == "paper-max" and res["not_evaluated"] == []
    dev = res["dev"]["metrics"]["correct"]["configs"]
    assert [dev[n]["mean"]["accuracy"] for n in ("plain", "paper", "paper-max")] == [0.5, 0.0, 1.0]
    assert len(calls) == 3 * 4 * 2 + 2 * 4 * 2  # dev: 3 configs x 4 questions x 2 positions; test: 2 configs
    t = res["test"]["summary"]["metrics"]["correct"]
    assert set(t["configs"]) == {"plain", "paper-max"} and res["test"]["settings"]["split"] == "test"
    d = t["vs_baseline"]["paper-max"]["mean"]
    assert d["diff"] == 0.5 and d["wins"] == 4 and d["losses"] == 0 and d["ci"][0] <= 0.5 <= d["ci"][1]
    preset = json.loads((tmp_path / "out" / "preset.json").read_text())
    assert {k: v for k, v in preset.items() if k != "tuned"} == {"bases": "paper", "aggregation": "max"}
    assert preset["tuned"]["config"] == "paper-max" and preset["tuned"]["test_vs_plain"]["diff"] == 0.5
    llm = ChatAttentionBuckets(preset=str(tmp_path / "out" / "preset.json"))
    assert llm.bases == "paper" and llm.aggregation == "max"
    on_disk = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert on_disk["chosen"] == "paper-max" and on_disk["preset"] == preset
    text = format_tune(res, tmp_path / "out")
    assert "chosen: paper-max" in text and "paper-max - plain: +50.0 points, paired 95% CI [" in text
    assert "    bases='paper'" in text and "    aggregation='max'" in text


def test_budget_stops_the_search_and_a_rerun_resumes(tmp_path):
    data, out, calls = qa_file(tmp_path), tmp_path / "out", []
    res = run_tune(data, factory=factory(calls), output=out, budget="11", **KW)
    # plain (8 calls) in full; paper and paper-max (merge rules of one base set: they advance together,
    # sharing each prompt's prefill) 2 and 1 of 8; plain is chosen among what was evaluated
    assert [(c["name"], c["done"]) for c in res["candidates"]] == [("plain", 8), ("paper", 2), ("paper-max", 1)]
    assert res["not_evaluated"] == ["paper", "paper-max"] and res["chosen"] == "plain"
    assert len(calls) == 11 + 4 * 2  # the test split: plain alone, 4 questions x 2 positions
    text = format_tune(res)
    assert "paper                  not evaluated: 2 of 8 dev samples (budget)" in text
    assert "not evaluated on every dev sample: paper, paper-max" in text
    assert json.loads((out / "preset.json").read_text())["bases"] == 10000.0  # plain: the model's own base
    # no budget: only what is missing (dev, and paper-max on test: plain is cached); a third run calls nothing
    calls.clear()
    res = run_tune(data, factory=factory(calls), output=out, **KW)
    assert len(calls) == 5 + 8 + 8 and res["chosen"] == "paper-max" and res["settings"]["new_dev_calls"] == 13
    calls.clear()
    again = run_tune(data, factory=factory(calls), output=out, **KW)
    assert calls == [] and again["dev"] == res["dev"] and again["test"]["summary"] == res["test"]["summary"]


def test_budget_spent_before_plain_finishes(tmp_path):
    calls: list = []
    res = run_tune(qa_file(tmp_path), factory=factory(calls), output=tmp_path / "out", budget="3", **KW)
    assert "chosen" not in res and len(calls) == 3 and not (tmp_path / "out" / "preset.json").exists()
    assert "nothing chosen: 'plain' was not evaluated on every dev sample" in format_tune(res)


# ---- presets in the chat model ------------------------------------------------------


def test_preset_explicit_arguments_win(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"bases": [10000, 20000], "aggregation": "mean", "tuned": {"config": "x"}}))
    llm = ChatAttentionBuckets(preset=path)
    assert llm.bases == [10000, 20000] and llm.aggregation == "mean" and llm.preset == str(path)
    llm = ChatAttentionBuckets(preset=str(path), aggregation="max")
    assert llm.aggregation == "max" and llm.bases == [10000, 20000]


def test_builtin_presets_are_the_registry():
    names = builtin_presets()
    assert names["paper-max"] == {"bases": "paper", "aggregation": "max"}
    assert "plain" not in names and "plain+reorder" not in names
    llm = ChatAttentionBuckets(preset="paper-mean")
    assert llm.bases == "paper" and llm.aggregation == "mean"


@pytest.mark.parametrize("content,needle", [
    (None, "no such file and not a built-in preset; allowed: a JSON file"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list; allowed: one JSON object"),
    ('{"bases": "paper", "agregation": "max"}', "unknown setting 'agregation'; allowed: aggregation, bases"),
    ('{"bases": "papers"}', "bases='papers' is not allowed"),
])
def test_bad_preset(tmp_path, content, needle):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(needle)):
        ChatAttentionBuckets(preset=str(path))


# ---- end to end on a tiny random model ----------------------------------------------


def test_tune_command_on_a_tiny_model(tmp_path, tiny_chat_dir, capsys):
    out = tmp_path / "out"
    argv = ["tune", "--task", qa_file(tmp_path, n_rows=4), "--model", tiny_chat_dir, "--configs", "paper-max",
            "--positions", "0,-1", "--samples", "2", "--test-samples", "2", "--max-tokens", "3",
            "--resamples", "200", "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "tune.json").read_text())
    assert res["chosen"] in ("plain", "paper-max") and f"chosen: {res['chosen']}" in printed
    assert len((out / "dev" / "records.jsonl").read_text().splitlines()) == 2 * 2 * 2
    llm = ChatAttentionBuckets(preset=str(out / "preset.json"), model=tiny_chat_dir, max_tokens=3)
    expected = 10000.0 if res["chosen"] == "plain" else "paper"
    assert llm.bases == expected and f"bases={expected!r}" in printed
    assert isinstance(llm.invoke("hi").content, str)
    # a re-run resumes: no new dev calls
    assert cli_main(argv) == 0 and json.loads((out / "tune.json").read_text())["settings"]["new_dev_calls"] == 0


def test_a_candidate_that_cannot_be_a_preset_is_refused_early():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Extra(BenchConfig):
        layers: str | None = None

    assert [c.name for c in candidates([Extra("x", bases="paper")])] == ["plain", "x"]  # None: not a setting
    with pytest.raises(ValueError, match="config 'y' sets layers, which ChatAttentionBuckets does not take"):
        candidates([Extra("y", bases="paper", layers="upper")])


def test_grid_adds_each_base_set_with_each_rule():
    from langchain_attention_buckets.bench.tune import grid
    from langchain_attention_buckets.engine.merge import MERGE_RULES

    cs = candidates([BenchConfig("paper-max", bases="paper", aggregation="max"), BenchConfig("two", bases=[1e4, 2e4])])
    names = [c.name for c in grid(cs)]
    assert names[:3] == ["plain", "paper-max", "two"]  # the candidates first, then the generated ones
    assert names[3:] == [f"paper/{r}" for r in MERGE_RULES if r != "max"] + [f"10000x20000/{r}" for r in MERGE_RULES
                                                                          if r != "confidence"]
    assert len({(c.bases, c.aggregation) for c in grid(cs)}) == len(names)  # no pair twice
