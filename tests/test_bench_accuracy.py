"""The accuracy-by-position harness, with a fake chat model whose accuracy depends on position."""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_attention_buckets.bench import accuracy
from langchain_attention_buckets.bench.accuracy import (
    accuracy_main,
    add_accuracy_arguments,
    default_positions,
    parse_positions,
    run_accuracy,
)
from langchain_attention_buckets.bench.configs import (
    CONFIGS,
    BenchConfig,
    default_factory,
    key_config,
    parse_configs,
    reorder_items,
)
from langchain_attention_buckets.bench.report import format_report, markdown_report
from langchain_attention_buckets.bench.stats import bootstrap_indices, compare, consistency, summarize
from langchain_attention_buckets.bench.tasks import TASKS, Sample, make_samples
from langchain_attention_buckets.bench.tasks.tool_catalog import CATALOG
from langchain_attention_buckets.bench.tasks.tools import _fill

# ---- a fake chat model -------------------------------------------------------------


class PositionalFake(BaseChatModel):
    """Answers right unless the essential item is shown inside `bad` (a fraction range).

    It finds the question among `families` (one sample per question), locates the
    essential item in the prompt (or among the bound tools) and records where it saw it.
    """

    families: list[Any]
    bad: tuple[float, float] = (0.3, 0.7)
    calls: Any = None  # a list of shown positions, one per call; shared with the test
    fail_after: int | None = None  # raise after this many calls (an interrupted run)

    @property
    def _llm_type(self) -> str:
        return "positional-fake"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=tools, tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, tools=None, **kw):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interrupt")
        prompt = messages[-1].content
        tail = prompt[prompt.rfind("\n\n") + 1:]  # the question is in the last paragraph
        fam = next(f for f in self.families if f.question in tail)
        if tools is not None:
            names = [t["function"]["name"] for t in tools]
            shown, n = names.index(fam.answer), len(names)
        else:
            starts = sorted((prompt.index(it.text), it.id) for it in fam.items)
            shown, n = [i for _, i in starts].index(fam.gold.id), len(starts)
        self.calls.append(shown)
        right = not (self.bad[0] <= shown / max(n - 1, 1) <= self.bad[1])
        if tools is not None:
            name = fam.answer if right else next(x for x in names if x != fam.answer)
            msg = AIMessage("", tool_calls=[{"name": name, "args": dict(fam.answer_args), "id": "c1"}])
        else:
            msg = AIMessage(f"The answer is {fam.answer}." if right else "I am not sure.")
        return ChatResult(generations=[ChatGeneration(message=msg)])


def families(task: str, n_items: int, samples: int, seed: int = 0) -> list[Sample]:
    return make_samples(task, n_items=n_items, positions=[0], samples_per_position=samples, seed=seed)


def fake_factory(task, n_items, samples, calls, seed=0, fail_after=None):
    fams = families(task, n_items, samples, seed)
    bad = {"plain": (0.3, 0.7), "paper": (0.45, 0.55)}  # others: right everywhere

    def make(config: BenchConfig) -> BaseChatModel:
        return PositionalFake(families=fams, bad=bad.get(config.name, (2.0, 3.0)),
                              calls=calls, fail_after=fail_after)

    return make


SMALL = dict(n_items=8, positions=[0, 3, 7], samples_per_position=4, seed=0)


# ---- end to end --------------------------------------------------------------------


def test_run_writes_files_and_shapes(tmp_path):
    calls: list[int] = []
    res = run_accuracy("kv-short", configs="plain,paper,plain+reorder", output=tmp_path,
                       factory=fake_factory("kv-short", 8, 4, calls), progress=False, **SMALL)
    assert {"results.json", "records.jsonl", "tables.md", "accuracy_correct.png",
            "diff_vs_baseline_correct.png"} <= {p.name for p in tmp_path.iterdir()}
    tables = (tmp_path / "tables.md").read_text()
    assert "| plain |" in tables and "| paper |" in tables and "| plain+reorder |" in tables
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["settings"] == res["settings"] and len(on_disk["records"]) == 3 * 3 * 4
    assert len(calls) == 36 and len((tmp_path / "records.jsonl").read_text().splitlines()) == 36

    m = res["summary"]["metrics"]["correct"]
    assert list(m["configs"]) == ["plain", "paper", "plain+reorder"]
    for c in m["configs"].values():
        assert [e["position"] for e in c["positions"]] == [0, 3, 7]
        assert [e["n"] for e in c["positions"]] == [4, 4, 4]
        for e in c["positions"] + [c["mean"], c["worst"]]:
            lo, hi = e["ci"]
            assert 0 <= lo <= e["accuracy"] <= hi <= 1
        assert sum(c["consistency"].values()) == 4
    # the fake fails plain in the middle third: a curve that is not flat
    assert [e["accuracy"] for e in m["configs"]["plain"]["positions"]] == [1.0, 0.0, 1.0]
    worst = m["configs"]["plain"]["worst"]
    assert (worst["accuracy"], worst["position"]) == (0.0, 3)
    assert worst["ci"][0] == 0.0 and worst["ci"][1] == pytest.approx(0.490, abs=1e-3)  # Wilson, 0 of 4
    assert m["configs"]["plain"]["consistency"] == {"always": 0, "sometimes": 4, "never": 0}
    assert m["configs"]["paper"]["mean"]["accuracy"] == 1.0
    d = m["vs_baseline"]["paper"]
    assert [e["diff"] for e in d["positions"]] == [0.0, 1.0, 0.0]
    assert d["mean"]["wins"] == 4 and d["mean"]["losses"] == 0
    assert d["mean"]["ci"][0] <= d["mean"]["diff"] <= d["mean"]["ci"][1]
    assert "plain" not in m["vs_baseline"]
    assert "pos 3" in format_report(res) and "plain+reorder" in format_report(res)
    md = markdown_report(res).splitlines()
    table = [ln for ln in md if ln.startswith("|")]
    assert table and all(ln.count("|") == table[0].count("|") for ln in table[:2])
    assert any(ln.startswith("| plain+reorder |") for ln in table)


def test_tools_task_scores_tool_and_args(tmp_path):
    calls: list[int] = []
    res = run_accuracy("tools", configs=["plain", "paper"], output=tmp_path,
                       factory=fake_factory("tools", 8, 4, calls), progress=False, **SMALL)
    m = res["summary"]["metrics"]
    assert set(m) == {"tool", "tool+args"} and res["settings"]["metrics"] == ["tool", "tool+args"]
    assert [e["accuracy"] for e in m["tool"]["configs"]["plain"]["positions"]] == [1.0, 0.0, 1.0]
    assert [e["accuracy"] for e in m["tool+args"]["configs"]["paper"]["positions"]] == [1.0, 1.0, 1.0]
    rec = next(r for r in res["records"] if r["scores"]["tool"])
    assert rec["tool_calls"][0]["name"] == rec["answer"]
    assert (tmp_path / "accuracy_tool_args.png").exists()


@pytest.mark.parametrize("task, runs_as", [("kv-short", "plain"), ("qa", "plain"), ("tools", "paper")])
def test_default_shares_the_records_of_what_it_runs(tmp_path, task, runs_as):
    """`default` (bases="adaptive") is the paper set where tools are bound, the plain model
    elsewhere: its calls are those of that config, computed once and labelled with both names."""
    calls: list[int] = []
    res = run_accuracy(task, configs=["plain", "paper", "default"], output=tmp_path,
                       factory=fake_factory(task, 8, 4, calls), progress=False, plots=False, **SMALL)
    assert len(calls) == 2 * 3 * 4  # plain and paper; default computed nothing of its own
    by = {(r["config"], r["question"], r["position"]): r for r in res["records"]}
    assert len(by) == 3 * 3 * 4
    for (name, q, p), r in by.items():
        if name == "default":
            assert r["scores"] == by[(runs_as, q, p)]["scores"]
    metric = res["settings"]["metrics"][0]
    m = res["summary"]["metrics"][metric]
    assert m["configs"]["default"]["mean"] == m["configs"][runs_as]["mean"]
    assert key_config(CONFIGS["default"], tools_bound=task == "tools") == CONFIGS[runs_as].to_dict()
    # a merge rule the named configs lack keeps a key of its own
    odd = BenchConfig("default-max", bases="adaptive", aggregation="max")
    assert key_config(odd, tools_bound=True) == CONFIGS["paper-max"].to_dict()
    assert key_config(BenchConfig("x", bases="adaptive", aggregation="anchored", reorder=True), tools_bound=True)["name"] == "x"


def test_run_without_the_baseline(tmp_path):
    calls: list[int] = []
    res = run_accuracy("qa", configs="paper", output=tmp_path, factory=fake_factory("qa", 8, 4, calls),
                       progress=False, **SMALL)
    assert res["summary"]["metrics"]["correct"]["vs_baseline"] == {}
    assert [p.rsplit("/", 1)[-1] for p in res["plots"]] == ["accuracy_correct.png"]
    assert "Δmean" not in format_report(res) and "paper" in format_report(res)


def test_resume_skips_done_work(tmp_path):
    calls: list[int] = []
    kw = dict(configs="plain,paper", output=tmp_path, progress=False, plots=False, **SMALL)
    # an interrupted first run keeps what it finished ...
    with pytest.raises(KeyboardInterrupt):
        run_accuracy("qa", factory=fake_factory("qa", 8, 4, calls, fail_after=10), **kw)
    assert len(calls) == 10
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 10
    # ... a second run does only the rest ...
    calls.clear()
    first = run_accuracy("qa", factory=fake_factory("qa", 8, 4, calls), **kw)
    assert len(calls) == 24 - 10 and first["settings"]["new_calls"] == 14
    # ... and a third run calls the model zero times and gives the same numbers
    calls.clear()
    again = run_accuracy("qa", factory=fake_factory("qa", 8, 4, calls), **kw)
    assert calls == [] and again["settings"]["new_calls"] == 0
    assert again["summary"] == first["summary"]
    # a changed setting (another seed) is new work
    run_accuracy("qa", factory=fake_factory("qa", 8, 4, calls, seed=1), configs="plain",
                 output=tmp_path, progress=False, plots=False, **{**SMALL, "seed": 1})
    assert len(calls) == 12


def test_cache_survives_a_cut_last_line(tmp_path):
    calls: list[int] = []
    kw = dict(configs="plain", output=tmp_path, progress=False, plots=False, **SMALL)
    run_accuracy("kv", factory=fake_factory("kv", 8, 4, calls), **kw)
    path = tmp_path / "records.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # cut mid-record
    calls.clear()
    run_accuracy("kv", factory=fake_factory("kv", 8, 4, calls), **kw)
    assert len(calls) == 1
    calls.clear()
    run_accuracy("kv", factory=fake_factory("kv", 8, 4, calls), **kw)
    assert calls == []


def test_reorder_changes_what_the_model_sees(tmp_path):
    calls: list[int] = []
    res = run_accuracy("kv", configs="plain,plain+reorder", output=tmp_path,
                       factory=fake_factory("kv", 8, 4, calls), progress=False, plots=False, **SMALL)
    recs = {(r["config"], r["question"], r["position"]): r for r in res["records"]}
    expected = {0: 7, 3: 1, 7: 3}  # LongContextReorder of 8 ranked items: [1, 3, 5, 7, 6, 4, 2, 0]
    for (config, q, pos), r in recs.items():
        if config == "plain":
            assert r["order"] == list(range(8)) and r["shown_position"] == pos
        else:
            assert r["order"] != list(range(8)) and r["shown_position"] == expected[pos]
    # the fake saw the reordered prompt: ranks 0 and 7 move inward or out as reorder says
    plain_seen = [c for c, r in zip(calls, res["records"]) if r["config"] == "plain"]
    reorder_seen = [c for c, r in zip(calls, res["records"]) if r["config"] == "plain+reorder"]
    assert plain_seen == [0, 3, 7] * 4 and reorder_seen == [7, 1, 3] * 4


def test_reorder_items_matches_long_context_reorder():
    from langchain_community.document_transformers import LongContextReorder
    from langchain_core.documents import Document

    sample = families("qa", 6, 1)[0]
    order = reorder_items(sample.items)
    docs = LongContextReorder().transform_documents([Document(page_content=it.text) for it in sample.items])
    assert [sample.items[j].text for j in order] == [d.page_content for d in docs]
    assert sorted(order) == list(range(6)) and order != list(range(6))


# ---- data ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_samples_deterministic_and_seeded(task):
    kw = dict(n_items=10, positions=[0, 5, 9], samples_per_position=3)
    a, b = make_samples(task, seed=0, **kw), make_samples(task, seed=0, **kw)
    c = make_samples(task, seed=1, **kw)
    assert [s.uid for s in a] == [s.uid for s in b]
    assert a[0].messages() == b[0].messages() and a[0].tools() == b[0].tools()
    assert not {s.uid for s in a} & {s.uid for s in c}
    assert len({s.uid for s in a}) == 9


@pytest.mark.parametrize("task", list(TASKS))
def test_samples_place_the_gold_item(task):
    samples = make_samples(task, n_items=12, positions=[0, 6, 11], samples_per_position=3, seed=0)
    assert [(s.question_index, s.position) for s in samples] == [(q, p) for q in range(3) for p in (0, 6, 11)]
    for q in range(3):
        fam = [s for s in samples if s.question_index == q]
        # the same question; only the gold item moves, the others keep their order
        assert len({(s.question, s.answer, s.gold.id) for s in fam}) == 1
        rest = {tuple(it.id for it in s.items if it.id != s.gold.id) for s in fam}
        assert len(rest) == 1
    for s in samples:
        assert s.items[s.position] is s.gold and len(s.items) == 12
        assert len({it.id for it in s.items}) == 12
        text = "\n".join(m.content for m in s.messages())
        if s.tools() is None:  # the prompt shows every item verbatim, in order
            offsets = [text.index(it.text) for it in s.items]
            assert offsets == sorted(offsets)
        else:
            assert [t["function"]["name"] for t in s.tools()] == [it.id for it in s.items]


def test_kv_short_answers_are_unique_numbers():
    for s in make_samples("kv-short", n_items=40, positions=[0], samples_per_position=5, seed=0):
        values = [it.text.split(": ")[1] for it in s.items]
        assert len(set(values)) == 40 and all(re.fullmatch(r"\d{4}", v) for v in values)
        assert s.gold.text == f"{s.question}: {s.answer}"


def test_qa_answer_only_in_gold_document():
    for s in make_samples("qa", n_items=20, positions=[5], samples_per_position=10, seed=3):
        holders = [it for it in s.items if s.answer.lower() in it.text.lower()]
        assert holders == [s.gold]
        assert s.gold.id in s.question


def test_tool_catalog_is_realistic_and_distinct():
    assert len({t.name for t in CATALOG}) == len(CATALOG) >= 48
    for t in CATALOG:
        sentences = [x for x in re.split(r"(?<=\.)\s+", t.description) if x]
        assert 2 <= len(sentences) <= 4, t.name
        assert 2 <= len(t.params) <= 4, t.name
        assert all(p.description for p in t.params)
        for template in t.requests:  # every template fills, and states every slotted argument
            request, args = _fill(replace(t, requests=(template,)), random.Random(0))
            assert "{" not in request and set(args) == {p.name for p in t.params if p.slot}
            assert all(str(v) in request for v in args.values()), request


def test_tool_requests_point_to_one_tool():
    """A bag-of-words matcher finds the needed tool: requests are clearly about one tool."""
    def words(s: str) -> set[str]:
        return {w for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 3}

    samples = make_samples("tools", n_items=len(CATALOG), positions=[0], samples_per_position=30, seed=0)
    hits = 0
    for s in samples:
        tools = s.tools()
        q = words(s.question)
        score = [len(q & words(t["function"]["name"].replace("_", " ") + " " + t["function"]["description"]
                                + " ".join(p["description"] for p in t["function"]["parameters"]["properties"].values())))
                 for t in tools]
        hits += tools[int(np.argmax(score))]["function"]["name"] == s.answer
        # every required parameter the request states has a value
        req = tools[s.position]["function"]["parameters"]["required"]
        assert set(s.answer_args) <= set(req)
    assert hits >= 0.8 * len(samples)


# ---- scorers -------------------------------------------------------------------------


def test_kv_scorers():
    s = families("kv", 5, 1)[0]
    assert s.score(AIMessage(f"The value is {s.answer}."))["correct"]
    assert s.score(AIMessage(s.answer.upper()))["correct"]
    assert not s.score(AIMessage(s.answer[:-1]))["correct"]
    assert not s.score(AIMessage(s.items[1].text))["correct"]

    s = families("kv-short", 5, 1)[0]
    assert s.score(AIMessage(f"The number for \"{s.question}\" is {s.answer}."))["correct"]
    assert s.score(AIMessage(s.answer))["correct"]
    assert not s.score(AIMessage(s.answer + "7"))["correct"]  # part of a longer number
    assert not s.score(AIMessage("1" + s.answer))["correct"]
    assert not s.score(AIMessage("I don't know"))["correct"]


def test_qa_scorer():
    s = families("qa", 5, 1)[0]
    assert s.score(AIMessage(s.answer.upper()))["correct"]
    assert s.score(AIMessage([{"type": "text", "text": f"It is {s.answer}."}]))["correct"]
    assert not s.score(AIMessage("Somewhere else."))["correct"]


def test_tools_scorer():
    s = families("tools", 8, 1)[0]
    call = lambda name, args: AIMessage("", tool_calls=[{"name": name, "args": args, "id": "1"}])  # noqa: E731
    other = next(it.id for it in s.items if it.id != s.answer)
    assert s.answer_args
    assert s.score(call(s.answer, s.answer_args)) == {"tool": True, "tool+args": True}
    loose = {k: (str(v).upper() if isinstance(v, str) else str(v)) for k, v in s.answer_args.items()}
    assert s.score(call(s.answer, loose)) == {"tool": True, "tool+args": True}
    assert s.score(call(s.answer, {})) == {"tool": True, "tool+args": False}
    assert s.score(call(other, s.answer_args)) == {"tool": False, "tool+args": False}
    assert s.score(AIMessage(f"I would call {s.answer}.")) == {"tool": False, "tool+args": False}
    # a call cut short by max_tokens still shows which tool was picked
    cut = '{"name": "%s", "arguments": {"ci' % s.answer
    bad = lambda name, args: AIMessage("", invalid_tool_calls=[  # noqa: E731
        {"type": "invalid_tool_call", "id": "1", "name": name, "args": args, "error": None}])
    assert s.score(bad(None, cut)) == {"tool": True, "tool+args": False}
    assert s.score(bad(None, json.dumps(cut))) == {"tool": True, "tool+args": False}
    assert s.score(bad(s.answer, "{")) == {"tool": True, "tool+args": False}
    assert s.score(bad(None, cut.replace(s.answer, other)))["tool"] is False
    assert s.score(bad(None, '{"na'))["tool"] is False
    # only the first call counts
    two = AIMessage("", tool_calls=[{"name": other, "args": {}, "id": "1"},
                                    {"name": s.answer, "args": s.answer_args, "id": "2"}])
    assert s.score(two)["tool"] is False


# ---- statistics, configs, command line -----------------------------------------------


def test_position_intervals_are_wilson_and_never_zero_width():
    from langchain_attention_buckets.bench.stats import wilson

    X = np.array([[1.0, 0.0, 1.0]] * 16)
    s = summarize(X, bootstrap_indices(16, 200, seed=0))
    full, empty = [e["ci"] for e in s["positions"]][:2]
    assert full == list(wilson(16, 16)) and empty == list(wilson(0, 16))
    assert full[0] == pytest.approx(0.8064, abs=1e-4) and full[1] == pytest.approx(1.0)  # 16 of 16
    assert empty[0] == pytest.approx(0.0) and empty[1] == pytest.approx(0.1936, abs=1e-4)  # 0 of 16
    assert wilson(0, 0) == (None, None)


def test_bootstrap_ci_and_paired_difference():
    rng = np.random.default_rng(0)
    X = (rng.random((60, 4)) < [0.9, 0.5, 0.5, 0.9]).astype(float)
    idx = bootstrap_indices(60, 2000, seed=0)
    assert idx.shape == (2000, 60)
    s = summarize(X, idx)
    for e in s["positions"]:
        assert 0 <= e["ci"][0] < e["accuracy"] < e["ci"][1] <= 1 and e["n"] == 60
        assert e["ci"][1] - e["ci"][0] < 0.35
    assert s["worst"]["position_index"] in (1, 2)
    same = compare(X, X, idx)
    assert same["mean"] == {"diff": 0.0, "ci": [0.0, 0.0], "wins": 0, "losses": 0}
    better = compare(np.ones_like(X), X, idx)
    assert better["mean"]["ci"][0] > 0  # a real difference is detected
    X[0, 1] = np.nan
    assert summarize(X, idx)["positions"][1]["n"] == 59
    assert consistency(np.array([[1, 1], [1, 0], [0, 0], [np.nan, 1]])) == {
        "always": 1, "sometimes": 1, "never": 1}


def test_positions_and_configs():
    assert default_positions(16) == [0, 4, 8, 11, 15]
    assert default_positions(3) == [0, 1, 2]
    assert parse_positions("0,4,-1", 16) == [0, 4, 15]
    with pytest.raises(ValueError, match="out of range"):
        parse_positions("0,16", 16)
    with pytest.raises(ValueError, match="integers"):
        parse_positions("first", 16)
    assert [c.name for c in parse_configs("plain,paper-max")] == ["plain", "paper-max"]
    assert CONFIGS["paper-mean"] == BenchConfig("paper-mean", "paper", "mean")
    assert CONFIGS["plain+reorder"].reorder and CONFIGS["plain"].bases is None
    with pytest.raises(ValueError, match="unknown config"):
        parse_configs("plain,nope")
    with pytest.raises(ValueError, match="unique"):
        parse_configs("plain,plain")
    assert BenchConfig("x", [1.0, 2.0]).bases == (1.0, 2.0)
    with pytest.raises(ValueError, match="out of range"):
        make_samples("kv", n_items=4, positions=[4], samples_per_position=1, seed=0)


def test_default_factory_builds_chat_attention_buckets(monkeypatch):
    import langchain_attention_buckets.chat.model as pkg

    made = []

    class Recorder:
        def __init__(self, **kw):
            made.append(kw)

        def load(self):
            return argparse.Namespace(base=100000.0)

    monkeypatch.setattr(pkg, "ChatAttentionBuckets", Recorder, raising=False)
    make = default_factory("some/model", max_tokens=17)
    make(CONFIGS["plain"])
    make(CONFIGS["paper-max"])
    make(BenchConfig("mine", [1.0, 1.5]))
    common = dict(model="some/model", aggregation="confidence", temperature=0, max_tokens=17)
    # plain: the model's own base, one row (the chat model's default would be "paper")
    assert made[1] == {**common, "bases": 100000.0}
    assert made[2]["bases"] == "paper" and made[2]["aggregation"] == "max"
    assert made[3]["bases"] == [1.0, 1.5]


def test_command_line(tmp_path, monkeypatch, capsys):
    calls: list[int] = []
    seen = {}

    def factory(model, *, max_tokens):
        seen.update(model=model, max_tokens=max_tokens)
        return fake_factory("kv-short", 8, 3, calls)

    monkeypatch.setattr(accuracy, "default_factory", factory)
    parser = argparse.ArgumentParser()
    add_accuracy_arguments(parser)
    argv = ["--task", "kv-short", "--items", "8", "--positions", "0,3,7", "--samples", "3",
            "--configs", "plain,paper", "--output", str(tmp_path), "--no-progress"]
    assert accuracy_main(parser.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "paper" in out and "results.json" in out
    assert seen == {"model": None, "max_tokens": TASKS["kv-short"].max_tokens}
    assert len(calls) == 2 * 3 * 3
    bad = parser.parse_args(argv[:4] + ["--positions", "0,9"] + argv[6:])
    assert accuracy_main(bad) == 2 and "out of range" in capsys.readouterr().err


class SlowFake(PositionalFake):
    """A PositionalFake that takes a while per call and records how many calls overlap."""

    gate: Any = None  # {"lock": Lock, "active": int, "peak": int}, shared with the test

    def _generate(self, *args, **kw):
        with self.gate["lock"]:
            self.gate["active"] += 1
            self.gate["peak"] = max(self.gate["peak"], self.gate["active"])
        try:
            time.sleep(0.05)
            return super()._generate(*args, **kw)
        finally:
            with self.gate["lock"]:
                self.gate["active"] -= 1


def test_concurrency_runs_calls_at_once_with_the_same_results(tmp_path):
    fams = families("tools", 8, 4)
    results = {}
    for n in (1, 3):
        gate = {"lock": threading.Lock(), "active": 0, "peak": 0}
        calls: list[int] = []
        res = run_accuracy(
            "tools", configs="plain,paper,default", output=tmp_path / str(n), progress=False, plots=False,
            concurrency=n, factory=lambda c: SlowFake(families=fams, calls=calls, gate=gate,
                                                      bad=(0.3, 0.7) if c.name == "plain" else (2.0, 3.0)),
            **SMALL,
        )
        assert gate["peak"] == n and len(calls) == 2 * 3 * 4  # default shares paper's calls
        results[n] = sorted((r["config"], r["question"], r["position"], r["scores"]["tool"]) for r in res["records"])
    assert results[1] == results[3] and len(results[3]) == 3 * 3 * 4
    with pytest.raises(ValueError, match="concurrency=0"):
        run_accuracy("tools", configs="plain", output=tmp_path / "bad", concurrency=0, factory=None, **SMALL)


def test_call_order_groups_configs_that_share_a_prefill():
    from langchain_attention_buckets.bench.accuracy import call_order

    samples = families("tools", 8, 3)
    configs = parse_configs("plain,paper,ms-poe,paper-mean,default,plain+reorder")
    order = [(s.question_index, c.name) for s, c in call_order(samples, configs, 2)]
    chunk = ["plain", "paper", "paper-mean", "default", "ms-poe", "plain+reorder"]  # merge-rule variants together
    assert order == [(q, c) for c in chunk for q in (0, 1)] + [(2, c) for c in chunk]
    assert [c for _, c in call_order(samples[:1], configs, 1)] == [CONFIGS[n] for n in chunk]


def test_default_factory_with_the_real_chat_model(tmp_path, tiny_chat_dir):
    """The harness drives ChatAttentionBuckets itself (a tiny random Llama: scores are noise)."""
    factory = default_factory(tiny_chat_dir, max_tokens=40)  # room for the shortest forced call
    res = run_accuracy("tools", configs="plain,paper", factory=factory, positions=[1], n_items=3,
                       samples_per_position=1, seed=0, output=tmp_path, progress=False, plots=False)
    assert [r["config"] for r in res["records"]] == ["plain", "paper"]
    assert all(r["input_tokens"] > 50 and r["output_tokens"] <= 40 for r in res["records"])
    assert len(factory(CONFIGS["plain"]).resolved_bases()) == 1
    assert len(factory(CONFIGS["paper"]).resolved_bases()) == 6


def test_progress_bar_counts_every_call(tmp_path, monkeypatch):
    from langchain_attention_buckets.bench import accuracy

    made = []
    monkeypatch.setattr(accuracy, "progress_bar", lambda total, **kw: made.append((total, kw)) or _quiet(total, kw))
    calls: list[int] = []
    run_accuracy("kv-short", configs="plain", output=tmp_path, factory=fake_factory("kv-short", 8, 4, calls),
                 plots=False, **SMALL)
    [(total, kwargs)] = made
    assert total == len(calls) == 12 and kwargs["progress"] is None  # None: the shared rule decides


def _quiet(total, kwargs):
    from langchain_attention_buckets.progress import progress_bar

    return progress_bar(total, **{**kwargs, "progress": False})
