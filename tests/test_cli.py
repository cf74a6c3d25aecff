"""Every ``attention-buckets`` subcommand answers ``--help`` (its imports work; no model is loaded)."""

from __future__ import annotations

import argparse

import pytest

from langchain_attention_buckets.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path of subcommand names, e.g. ("bench", "speed"), the root () included."""
    out = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(build_parser())


def test_the_commands():
    assert set(COMMANDS) == {(), ("bases",), ("bench",), ("bench", "accuracy"), ("bench", "speed"),
                             ("bench", "memory"), ("bench", "decisions"), ("bench", "compare"), ("bench", "serve"), ("serve",),
                             ("tune",)}


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "attention-buckets")
def test_help(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: attention-buckets")


def test_unknown_speed_part_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "speed", "--parts", "buckets,nope"])
    assert exit_.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_serve_refuses_an_open_address_without_a_key(monkeypatch):
    monkeypatch.delenv("ATTENTION_BUCKETS_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="without an API key"):
        main(["serve", "--host", "0.0.0.0"])


@pytest.mark.parametrize("argv,word", [
    (["bench", "serve", "--affinity", "sometimes"], "sometimes"),
    (["bench", "serve", "--sessions", "0"], "--sessions"),
])
def test_bench_serve_refuses_bad_settings(argv, word):
    with pytest.raises(SystemExit, match=word):
        main(argv)
