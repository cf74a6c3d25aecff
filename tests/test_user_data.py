"""The user's own JSONL data: good files load into samples like the built-in tasks', bad lines
give a ValueError naming the file, the line, the field and what is allowed."""

from __future__ import annotations

import argparse
import json

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_attention_buckets.bench.accuracy import accuracy_main, run_accuracy
from langchain_attention_buckets.bench.tasks import TEST_SEED_OFFSET, get_task
from langchain_attention_buckets.bench.tasks.user import hash_split, load_user_file


def tool(name: str, full: bool = True) -> dict:
    fn = {"name": name, "description": f"Does {name}.",
          "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}
    return {"type": "function", "function": fn} if full else {"name": name, "description": f"Does {name}."}


def tool_row(i: int, n: int = 4, **kw) -> dict:
    tools = [tool(f"t{i}_{j}", full=j % 2 == 0) for j in range(n)]
    row = {"kind": "tool", "request": f"request {i}", "tools": tools, "answer": f"t{i}_2", "arguments": {"x": i}}
    return {**row, **kw}


def qa_row(i: int, n: int = 3, **kw) -> dict:
    docs = [f"Doc {i}.{j}: the lake of river R{i}{j} is L{i}{j}." for j in range(n)]
    return {"kind": "qa", "question": f"Where does R{i}1 flow?", "documents": docs, "gold": 1,
            "answers": [f"L{i}1", f"Lake L{i}1"], **kw}


def write(tmp_path, rows, name="data.jsonl") -> str:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


# ---- good files ---------------------------------------------------------------------


def test_tool_file_places_the_needed_tool(tmp_path):
    rows = [tool_row(0, split="dev"), tool_row(1, n=5, split="dev"), tool_row(2, split="test")]
    spec = get_task(write(tmp_path, rows))
    assert spec.default_items == 4 and spec.metrics == ("tool", "tool+args") and not spec.generated
    dev = spec.samples(n_items=4, positions=[0, 3], samples_per_position=10, seed=0, split="dev")
    assert [(s.question_index, s.position) for s in dev] == [(0, 0), (0, 3), (1, 0), (1, 3)]
    for s in dev:
        names = [t["function"]["name"] for t in s.tools()]
        assert names[s.position] == s.answer and len(names) == 4
        assert all(t["type"] == "function" for t in s.tools())  # short form made an OpenAI schema
    # the other tools keep their order; a longer row keeps its first n_items - 1 others
    assert [t["function"]["name"] for t in dev[3].tools()] == ["t1_0", "t1_1", "t1_3", "t1_2"]
    assert dev[0].answer_args == {"x": 0}
    assert dev[0].score(AIMessage("", tool_calls=[{"name": "t0_2", "args": {"x": 0}, "id": "a"}])) == \
        {"tool": True, "tool+args": True}
    test = spec.samples(n_items=4, positions=[0], samples_per_position=10, seed=0, split="test")
    assert [s.question for s in test] == ["request 2"]
    assert len(spec.samples(n_items=4, positions=[0], samples_per_position=10, seed=0)) == 3  # all rows


def test_qa_file_documents_and_context(tmp_path):
    rows = [qa_row(0), qa_row(1, n=4)]
    spec = get_task(write(tmp_path, rows))
    assert spec.default_items == 3 and spec.metrics == ("correct",)
    s = spec.samples(n_items=3, positions=[2], samples_per_position=5, seed=0)[0]
    assert s.gold.text == rows[0]["documents"][1]
    prompt = s.messages()[0].content
    assert prompt.index("Doc 0.0") < prompt.index("Doc 0.2") < prompt.index("Doc 0.1") and "Where does R01" in prompt
    assert s.score(AIMessage("It is lake l01."))["correct"] and not s.score(AIMessage("L00"))["correct"]
    one = get_task(write(tmp_path, [{"kind": "qa", "question": "Q?", "context": "C says A.", "answers": "A"}], "c.jsonl"))
    assert one.default_items == 1
    (s,) = one.samples(n_items=1, positions=[0], samples_per_position=1, seed=0)
    assert "C says A." in s.messages()[0].content and s.score(AIMessage("A"))["correct"]


def test_split_defaults_to_a_hash_and_ids_to_lines(tmp_path):
    rows = load_user_file(write(tmp_path, [qa_row(i) for i in range(6)] + [qa_row(9, split="test", id=7)]))
    assert [r.split for r in rows[:6]] == [hash_split(f"Where does R{i}1 flow?") for i in range(6)]
    assert {r.split for r in rows} == {"dev", "test"}
    assert rows[0].id == "line-1" and rows[-1].id == 7


@pytest.mark.parametrize(("task", "heldout"), [("qa", True), ("kv", False)])
def test_built_in_test_split_is_other_questions(task, heldout):
    spec = get_task(task)
    kw = dict(n_items=5, positions=[0], samples_per_position=3, seed=0)
    dev, test = spec.samples(**kw, split="dev"), spec.samples(**kw, split="test")
    assert dev == spec.samples(**kw)  # dev is the seed's questions, as bench accuracy asks them
    # the other seed; qa's from held-out documents (tests/test_heldout.py), kv's from the same generator
    assert test == spec.make_samples(**{**kw, "seed": TEST_SEED_OFFSET}, **({"heldout": True} if heldout else {}))
    assert not {s.question for s in dev} & {s.question for s in test}


# ---- bad files ----------------------------------------------------------------------


BAD = [
    ("missing field", [tool_row(0), {k: v for k, v in tool_row(1).items() if k != "request"}],
     ":2: field 'request' is missing; allowed: a non-empty string"),
    ("wrong type", [qa_row(0), qa_row(1), qa_row(2, answers=[3])],
     ":3: field 'answers.0': Input should be a valid string"),
    ("wrong type of a tool", [tool_row(0, tools=[tool("a"), 5], answer="a")], ":1: field 'tools.1'"),
    ("bad JSON", [tool_row(0), '{"kind": "tool", "request": "x",'], ":2: not valid JSON"),
    ("unknown kind", [{"kind": "chat", "request": "hi"}], ":1: field 'kind' is 'chat'; allowed: \"tool\" or \"qa\""),
    ("no kind", [{"request": "hi"}], ":1: field 'kind' is missing"),
    ("two kinds", [tool_row(0), qa_row(0)], ":2: field 'kind': 'qa' after 'tool' items"),
    ("answer not among the tools", [tool_row(0, answer="nope")], ":1: answer 'nope' is not among the tools"),
    ("bad tool name", [tool_row(0, tools=[{"name": "a b"}], answer="a b")], ":1: field 'tools.0.name'"),
    ("unknown field", [qa_row(0, answer="x")], ":1: field 'answer' is not a known field"),
    ("bad split", [qa_row(0, split="train")], ":1: field 'split'"),
    ("both documents and context", [qa_row(0, context="c")], ":1: give either 'documents'"),
    ("gold out of range", [qa_row(0, gold=3)], ":1: gold=3 but there are 3 documents"),
    ("not an object", ["[1, 2]"], ":1: a JSON list, not an object"),
]


@pytest.mark.parametrize("rows,needle", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_line_names_file_line_and_field(tmp_path, rows, needle):
    path = write(tmp_path, rows)
    with pytest.raises(ValueError) as e:
        load_user_file(path)
    assert str(e.value).startswith(path + ":") and needle in str(e.value), str(e.value)


def test_wrong_type_says_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"data.jsonl:1: field 'gold'.*allowed: the index of the document"):
        load_user_file(write(tmp_path, [qa_row(0, gold="1")]))


def test_empty_and_missing_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty.jsonl: no items \(the file is empty\)"):
        get_task(str(empty))
    with pytest.raises(FileNotFoundError, match="nothing.jsonl: no such file"):
        get_task(str(tmp_path / "nothing.jsonl"))
    with pytest.raises(ValueError, match="unknown task 'toolz'.*or give a .jsonl file"):
        get_task("toolz")


def test_too_many_items_or_an_empty_split(tmp_path):
    spec = get_task(write(tmp_path, [tool_row(0, n=4, split="dev"), tool_row(1, n=6, split="dev")]))
    with pytest.raises(ValueError, match=r"row 'line-1' has 4 items, fewer than n_items=5; allowed: at most 4"):
        spec.samples(n_items=5, positions=[0], samples_per_position=5, seed=0)
    with pytest.raises(ValueError, match="no rows in split 'test'"):
        spec.samples(n_items=4, positions=[0], samples_per_position=5, seed=0, split="test")


# ---- bench accuracy on a file -------------------------------------------------------


class Echo(BaseChatModel):
    """Answers with the first accepted answer when the answer's document is shown first."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages, stop=None, run_manager=None, **kw):
        first = messages[-1].content.split("Document [1] ")[1].split("\n")[0]
        word = first.split(" is ")[-1].rstrip(".")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(word))])


def test_bench_accuracy_takes_a_file_and_a_split(tmp_path, capsys):
    path = write(tmp_path, [qa_row(i, split="dev" if i < 3 else "test") for i in range(5)])
    res = run_accuracy(path, configs="plain", factory=lambda c: Echo(), positions=[0, 2], samples_per_position=24,
                       output=tmp_path / "out", progress=False, plots=False, split="dev")
    # 3 dev rows (fewer than asked): the statistics count 3 questions, not 24
    assert res["settings"]["samples_per_position"] == 3 and len(res["records"]) == 6
    pos = res["summary"]["metrics"]["correct"]["configs"]["plain"]["positions"]
    assert [(p["accuracy"], p["n"]) for p in pos] == [(1.0, 3), (0.0, 3)]
    bad = write(tmp_path, ['{"kind": "qa"}'], "bad.jsonl")
    args = argparse.Namespace(task=bad, items=None, positions=None, configs="plain", seed=0, split=None)
    assert accuracy_main(args) == 2
    assert f"error: {bad}:1: field 'question' is missing" in capsys.readouterr().err


def test_the_example_files_load_and_match_their_generator():
    import runpy
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples" / "user_data"
    make = runpy.run_path(str(folder / "make_examples.py"), run_name="make_examples")
    for name, task, n, kind in (("tools.jsonl", "tools", 8, "tool"), ("qa.jsonl", "qa", 6, "qa")):
        rows = load_user_file(folder / name)
        assert {r.kind for r in rows} == {kind} and {r.split for r in rows} == {"dev", "test"}
        assert [json.loads(line) for line in (folder / name).read_text().splitlines()] == make["rows"](task, n)
