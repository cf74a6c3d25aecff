"""The held-out test split of the built-in tasks: tools and documents the dev split never shows.

Fast, no model: the samples, the catalogs and the scorers, plus `tune` with a fake chat model.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_attention_buckets.bench.tasks import TASKS, TEST_SEED_OFFSET, qa, tools
from langchain_attention_buckets.bench.tasks.tool_catalog import CATALOG, HELDOUT_CATALOG, SLOTS
from langchain_attention_buckets.bench.tune import run_tune

DESIGN_TOOLS = {t.name for t in CATALOG}
HELDOUT_TOOLS = {t.name for t in HELDOUT_CATALOG}


def split(task: str, name: str | None, n_items: int, positions=(0,), samples: int = 20, seed: int = 0):
    return TASKS[task].samples(n_items=n_items, positions=list(positions), samples_per_position=samples,
                               seed=seed, split=name)


def uid_hash(samples) -> str:
    return hashlib.sha256(",".join(s.uid for s in samples).encode()).hexdigest()[:16]


def template_slots(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


# ---- dev data is unchanged ---------------------------------------------------------

# uids of the samples before the held-out split existed (cached results are keyed by them);
# 4 questions of seed 0 at the positions shown; kv's test split is still another seed only.
BEFORE = {
    ("tools", None): "8cd315db35e04d33", ("tools", "dev"): "8cd315db35e04d33",
    ("qa", None): "0ac3ebddd46d48b9", ("qa", "dev"): "0ac3ebddd46d48b9",
    ("kv", "dev"): "a107a437cbf4d3f5", ("kv", "test"): "39bb733b8a03629e",
    ("kv-short", "dev"): "5875909885f77c44", ("kv-short", "test"): "222cf68481a81cd4",
}
SETTINGS = {"tools": (16, [0, 8, 15]), "qa": (20, [0, 10, 19]), "kv": (8, [0, 7]), "kv-short": (8, [0, 7])}


@pytest.mark.parametrize(("task", "name"), sorted(BEFORE, key=str))
def test_dev_and_unsplit_samples_are_unchanged(task, name):
    n_items, positions = SETTINGS[task]
    assert uid_hash(split(task, name, n_items, positions, samples=4)) == BEFORE[(task, name)]


def test_dev_is_make_samples_without_the_keyword_and_test_is_heldout_with_the_other_seed():
    kw = dict(n_items=6, positions=[0, 5], samples_per_position=3)
    for task, module in (("tools", tools), ("qa", qa)):
        assert split(task, "dev", 6, [0, 5], 3) == module.make_samples(**kw, seed=0)
        assert split(task, "test", 6, [0, 5], 3) == module.make_samples(**kw, seed=TEST_SEED_OFFSET, heldout=True)
        assert module.make_samples(**kw, seed=0, heldout=False) == module.make_samples(**kw, seed=0)


# ---- the held-out tools ------------------------------------------------------------


def test_heldout_catalog_is_new_and_its_names_are_unique():
    names = [t.name for t in HELDOUT_CATALOG]
    assert len(names) == len(set(names)) >= 24
    assert not DESIGN_TOOLS & HELDOUT_TOOLS
    # not the same tool renamed: no held-out description or request repeats a design one
    design_texts = {t.description for t in CATALOG} | {r for t in CATALOG for r in t.requests}
    assert not design_texts & ({t.description for t in HELDOUT_CATALOG} | {r for t in HELDOUT_CATALOG for r in t.requests})


def test_heldout_tools_are_documented_like_the_design_ones():
    for t in HELDOUT_CATALOG:
        sentences = [x for x in re.split(r"(?<=\.)\s+", t.description) if x]
        assert 2 <= len(sentences) <= 4, t.name
        assert 2 <= len(t.params) <= 4, t.name
        assert all(p.description for p in t.params), t.name
        assert len(t.requests) == 2, t.name


@pytest.mark.parametrize("spec", HELDOUT_CATALOG, ids=lambda t: t.name)
def test_heldout_requests_state_every_required_argument(spec):
    required = {p.name: p.slot for p in spec.params if p.is_required}
    assert required and all(slot in SLOTS for slot in required.values()), spec.name
    for template in spec.requests:
        assert set(required.values()) <= template_slots(template), template
        request, args = tools._fill(replace(spec, requests=(template,)), random.Random(0))
        assert "{" not in request and set(args) == set(required)
        assert all(str(v) in request for v in args.values()), request


def test_test_split_binds_only_heldout_tools_and_dev_only_design_ones():
    n = len(HELDOUT_CATALOG)
    test = split("tools", "test", n, [0, n // 2, n - 1], samples=10)
    dev = split("tools", "dev", n, [0], samples=10)
    assert {it.id for s in test for it in s.items} == HELDOUT_TOOLS  # every held-out tool bound
    assert {s.answer for s in test} <= HELDOUT_TOOLS
    assert {it.id for s in dev for it in s.items} <= DESIGN_TOOLS


def test_heldout_requests_point_to_one_tool():
    """A bag-of-words matcher finds the needed tool among all held-out tools: one tool per request."""
    samples = split("tools", "test", len(HELDOUT_CATALOG), samples=40)
    hits = 0
    for s in samples:
        bound = [t["function"] for t in s.tools()]
        score = [len(words(s.question) & words(f["name"].replace("_", " ") + " " + f["description"] + " "
                                              + " ".join(p["description"] for p in f["parameters"]["properties"].values())))
                 for f in bound]
        hits += bound[int(np.argmax(score))]["name"] == s.answer
    assert hits >= 0.9 * len(samples)


def test_heldout_positions_and_items_are_honoured():
    samples = split("tools", "test", 12, [0, 6, 11], samples=3)
    assert [(s.question_index, s.position) for s in samples] == [(q, p) for q in range(3) for p in (0, 6, 11)]
    for s in samples:
        assert len(s.items) == 12 and s.items[s.position].id == s.answer
        assert [t["function"]["name"] for t in s.tools()] == [it.id for it in s.items]
    for q in range(3):  # only the needed tool moves
        rest = {tuple(it.id for it in s.items if it.id != s.answer) for s in samples if s.question_index == q}
        assert len(rest) == 1


def test_heldout_items_limit_is_the_heldout_catalog_size():
    n = len(HELDOUT_CATALOG)
    assert len(split("tools", "test", n, samples=1)[0].items) == n
    with pytest.raises(ValueError, match=rf"at most {n} items \(the held-out catalog's size\), got n_items={n + 1}"):
        split("tools", "test", n + 1, samples=1)
    with pytest.raises(ValueError, match=rf"at most {len(CATALOG)} items \(the design catalog's size\)"):
        split("tools", "dev", len(CATALOG) + 1, samples=1)


def test_scorer_works_on_heldout_samples():
    s = split("tools", "test", 8, [3], samples=1)[0]
    call = lambda name, args: AIMessage("", tool_calls=[{"name": name, "args": args, "id": "1"}])  # noqa: E731
    other = next(it.id for it in s.items if it.id != s.answer)
    assert s.answer in HELDOUT_TOOLS and s.answer_args
    assert s.score(call(s.answer, s.answer_args)) == {"tool": True, "tool+args": True}
    assert s.score(call(s.answer, {})) == {"tool": True, "tool+args": False}
    assert s.score(call(other, s.answer_args)) == {"tool": False, "tool+args": False}


# ---- the held-out documents --------------------------------------------------------


def _fact_kind(template: str) -> str:
    """A fact template without its entity and answer: what kind of fact it states."""
    return re.sub(r"\{[EA]\}", "", template).lower()


def test_heldout_relations_are_new_kinds_of_facts():
    assert len(qa.HELDOUT_RELATIONS) >= 6
    design = {t for r in qa.RELATIONS for t in (r.intro, r.fact, r.question, r.closing)}
    held = {t for r in qa.HELDOUT_RELATIONS for t in (r.intro, r.fact, r.question, r.closing)}
    assert not design & held
    assert not {_fact_kind(r.fact) for r in qa.RELATIONS} & {_fact_kind(r.fact) for r in qa.HELDOUT_RELATIONS}
    assert not {_fact_kind(r.question) for r in qa.RELATIONS} & {_fact_kind(r.question) for r in qa.HELDOUT_RELATIONS}
    for r in qa.HELDOUT_RELATIONS:  # every slot has a filler
        slots = set().union(*(template_slots(t) for t in (r.intro, r.fact, r.question, r.closing))) - {"E", "A"}
        assert slots <= set(qa.HELDOUT_FILLERS), slots - set(qa.HELDOUT_FILLERS)


def _relation_of(text: str, relations) -> list:
    """The relations whose fact sentence, with any slot values, matches a document."""
    def pattern(r) -> str:
        return ".+?".join(re.escape(lit) for lit, _, _, _ in string.Formatter().parse(r.fact))

    return [r for r in relations if re.search(pattern(r), text)]


@pytest.mark.parametrize("name", ["dev", "test"])
def test_qa_split_uses_only_its_own_relations(name):
    own, other = (qa.RELATIONS, qa.HELDOUT_RELATIONS) if name == "dev" else (qa.HELDOUT_RELATIONS, qa.RELATIONS)
    samples = split("qa", name, 10, [0], samples=12)
    for s in samples:
        for it in s.items:
            assert len(_relation_of(it.text, own)) == 1 and not _relation_of(it.text, other), it.text
    questions = {r.question.replace("{E}", s.gold.id) for s in samples for r in own}
    assert {s.question for s in samples} <= questions


def test_heldout_qa_answer_only_in_gold_and_positions_honoured():
    samples = split("qa", "test", 20, [0, 9, 19], samples=6, seed=3)
    assert [(s.question_index, s.position) for s in samples] == [(q, p) for q in range(6) for p in (0, 9, 19)]
    for s in samples:
        assert len(s.items) == 20 and s.gold.id in s.question
        assert [it for it in s.items if s.answer.lower() in it.text.lower()] == [s.gold]
        assert s.score(AIMessage(f"It is {s.answer}."))["correct"]
        assert not s.score(AIMessage("I do not know."))["correct"]


# ---- tune judges on the held-out split -----------------------------------------------


class FirstTool(BaseChatModel):
    """Calls the first bound tool with no arguments; records the names of the bound tools."""

    seen: Any  # a list shared with the test

    @property
    def _llm_type(self) -> str:
        return "first-tool"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=tools, tool_choice=tool_choice, **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, tools=None, **kw):
        names = [t["function"]["name"] for t in tools]
        self.seen.append(names)
        msg = AIMessage("", tool_calls=[{"name": names[0], "args": {}, "id": "c1"}])
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_tune_searches_on_design_tools_and_tests_on_heldout_ones(tmp_path):
    seen: list = []
    res = run_tune("tools", configs="paper", factory=lambda config: FirstTool(seen=seen), output=tmp_path,
                   n_items=4, positions=[0, 3], samples=2, test_samples=3, own_base=lambda: 10000.0,
                   progress=False, plots=False)
    dev_calls = 2 * 2 * 2  # plain and paper x 2 questions x 2 positions
    assert res["chosen"] in {"plain", "paper"} and len(seen) > dev_calls
    assert all(set(names) <= DESIGN_TOOLS for names in seen[:dev_calls])
    assert all(set(names) <= HELDOUT_TOOLS for names in seen[dev_calls:])
    test_records = [json.loads(line) for line in (tmp_path / "test" / "records.jsonl").read_text().splitlines()]
    assert test_records and {r["answer"] for r in test_records} <= HELDOUT_TOOLS
    # position 0 right, position 3 wrong: the scorer ran on held-out samples
    acc = res["test"]["summary"]["metrics"]["tool"]["configs"]["plain"]["positions"]
    assert [e["accuracy"] for e in acc] == [1.0, 0.0]
