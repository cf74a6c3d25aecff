"""Progress bars: one rule decides shown or quiet, and every long operation takes its bar from it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import ClassVar

import pytest

from langchain_attention_buckets.engine import loading
from langchain_attention_buckets.progress import ENV_VAR, progress_bar, progress_enabled
from langchain_attention_buckets.retrieval import tools as retrieval


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeBar:
    """Stands in for ``progress_bar``: records the total and every update."""

    made: ClassVar[list[FakeBar]] = []

    def __init__(self, total=None, **kwargs):
        self.total, self.kwargs, self.n, self.closed = total, kwargs, 0, False
        FakeBar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    FakeBar.made = []
    monkeypatch.delenv(ENV_VAR, raising=False)
    return FakeBar.made


# ---- the rule ------------------------------------------------------------------------


def test_quiet_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    buf = io.StringIO()
    assert not progress_enabled(stream=buf)
    with progress_bar(3, desc="work", file=buf) as bar:
        bar.update(3)
    assert buf.getvalue() == ""


def test_shown_on_a_terminal(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert progress_enabled(stream=Terminal())


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_quiet_when_asked(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    term = Terminal()
    with progress_bar(3, desc="work", file=term) as bar:
        bar.update(3)
    assert term.getvalue() == ""


def test_shown_when_forced(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1")
    buf = io.StringIO()  # not a terminal: shown only because the environment says so
    with progress_bar(3, desc="work", unit="step", file=buf) as bar:
        bar.update(3)
    assert "work" in buf.getvalue() and "3/3" in buf.getvalue()


def test_the_argument_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1")
    assert not progress_enabled(False, io.StringIO())
    monkeypatch.setenv(ENV_VAR, "0")
    assert progress_enabled(True, io.StringIO())


def test_an_unknown_setting_warns_and_follows_the_terminal(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "maybe")
    with pytest.warns(UserWarning, match="ATTENTION_BUCKETS_PROGRESS='maybe'"):
        assert not progress_enabled(stream=io.StringIO())


def test_stderr_is_the_default_stream(monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, "1")
    with progress_bar(2, desc="to stderr") as bar:
        bar.update(2)
    captured = capsys.readouterr()
    assert "to stderr" in captured.err and captured.out == ""


# ---- the long operations use it ------------------------------------------------------


class _Saves:
    def __init__(self, name: str):
        self.name = name
        self.config = argparse.Namespace(quantization_config={"gguf": True})

    def save_pretrained(self, folder) -> None:
        (Path(folder) / f"{self.name}.json").write_text("{}")


def test_gguf_conversion_shows_its_steps(bars, monkeypatch, tmp_path):
    import transformers

    monkeypatch.setattr(loading, "progress_bar", FakeBar)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: _Saves("tokenizer"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: _Saves("model"))
    monkeypatch.setenv("ATTENTION_BUCKETS_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    target = loading.converted_checkpoint(gguf)
    assert (target / "done.json").is_file() and (target / "model.json").is_file()
    [bar] = bars
    assert bar.total == 3 and bar.n == 3 and bar.closed and "tiny.gguf" in bar.kwargs["desc"]
    assert loading.converted_checkpoint(gguf) == target and len(bars) == 1  # converted once: no bar the second time


class CountingEmbeddings:
    def __init__(self):
        self.batches: list[int] = []

    def embed_documents(self, texts):
        self.batches.append(len(texts))
        return [[float(len(t)), 1.0] for t in texts]

    def embed_query(self, text):
        return [float(len(text)), 1.0]


def _tools(n: int) -> list[dict]:
    return [{"type": "function", "function": {"name": f"tool_{i}", "description": f"Does thing {i}.",
                                              "parameters": {"type": "object", "properties": {}}}} for i in range(n)]


def test_embedding_a_catalog_shows_progress(bars, monkeypatch):
    monkeypatch.setattr(retrieval, "progress_bar", FakeBar)
    emb = CountingEmbeddings()
    retrieval.ToolRetriever(_tools(150), embeddings=emb, progress=True)
    [bar] = bars
    assert bar.total == 150 and bar.n == 150 and bar.kwargs["progress"] is True
    assert emb.batches == [64, 64, 22]  # in batches, so the bar moves


def test_cached_embeddings_need_no_bar(bars, monkeypatch, tmp_path):
    monkeypatch.setattr(retrieval, "progress_bar", FakeBar)
    cache = tmp_path / "emb.json"
    retrieval.ToolRetriever(_tools(5), embeddings=CountingEmbeddings(), cache_path=cache)
    emb = CountingEmbeddings()
    retrieval.ToolRetriever(_tools(5), embeddings=emb, cache_path=cache)
    assert len(bars) == 1 and emb.batches == []
    assert len(json.loads(cache.read_text())) == 5


def test_bench_speed_shows_a_bar_over_its_parts(bars, monkeypatch, tmp_path):
    from langchain_attention_buckets.bench.speed import command
    from langchain_attention_buckets.bench.speed.setup import Setup

    ran: list[str] = []
    parts = {name: command.Part(lambda setup, name=name: ran.append(name) or {}, lambda r, s: None)
             for name in ("first", "second", "skipped")}
    setup = Setup(None, None, None, "cpu", "float32", [1], [8], 1, 1, frozenset({"first", "second"}), progress=None)
    monkeypatch.setattr(command, "PARTS", parts)
    monkeypatch.setattr(command, "_setup", lambda args: setup)
    monkeypatch.setattr(command, "_header", lambda setup: {})
    monkeypatch.setattr(command, "progress_bar", FakeBar)
    assert command.speed_main(argparse.Namespace(output=str(tmp_path))) == 0
    [bar] = bars
    assert ran == ["first", "second"] and bar.total == 2 and bar.n == 2


def test_no_progress_flags(monkeypatch):
    from langchain_attention_buckets.cli import build_parser

    for cmd in (["bench", "speed"], ["bench", "memory"], ["bench", "accuracy", "--task", "kv"]):
        assert build_parser().parse_args([*cmd, "--no-progress"]).no_progress

