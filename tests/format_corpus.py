"""The format corpora (tests/data/formats/<family>.jsonl) read back through the parser.

    python tests/format_corpus.py      # per family: cases, passing whole, passing streamed

A case passes whole when ``formats.parse_message`` of its text gives the expected content,
reasoning, valid calls and invalid calls; streamed, when ``formats.MessageStream`` gives the
same, summed over its chunks, for the text fed one character at a time and in random pieces
of 1 to 12 characters (token-sized and several tokens at once), with a fixed seed.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_attention_buckets import formats  # noqa: E402

DATA = Path(__file__).parent / "data" / "formats"
TOOLS = json.loads((DATA / "tools.json").read_text())


def load(family: str) -> list[dict]:
    with open(DATA / f"{family}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(msg) -> dict:
    """What a case expects, read from a message."""
    return {
        "content": msg.content,
        "reasoning": msg.additional_kwargs.get("reasoning_content", ""),
        "calls": [[c["name"], c["args"]] for c in msg.tool_calls],
        "invalid": [c.get("name") for c in msg.invalid_tool_calls],
    }


def whole(family: str, case: dict):
    return formats.parse_message(case["text"], TOOLS, family, reasoning_opened=case.get("reasoning_opened"),
                                 reasoning_format=case.get("reasoning_format"), finish_reason=case.get("finish_reason"))


def streamed(family: str, case: dict, pieces: list[str]):
    stream = formats.MessageStream(TOOLS, family, reasoning_opened=case.get("reasoning_opened"),
                                   reasoning_format=case.get("reasoning_format"))
    chunks = [c for p in pieces for c in stream.feed(p)] + stream.finish(case.get("finish_reason"))
    out = chunks[0]
    for c in chunks[1:]:
        out = out + c
    return out


def random_pieces(text: str, rng: random.Random, most: int = 12) -> list[str]:
    pieces, at = [], 0
    while at < len(text):
        n = rng.randint(1, most)
        pieces.append(text[at : at + n])
        at += n
    return pieces


def splits(text: str, seed: int = 0, n_random: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    return [list(text), *(random_pieces(text, rng) for _ in range(n_random))]


def score(family: str) -> tuple[int, int, int, list[str]]:
    """(cases, passing whole, passing streamed, the ids that fail)."""
    cases = load(family)
    n_whole = n_stream = 0
    failing = []
    for case in cases:
        ok_whole = summary(whole(family, case)) == case["expect"]
        ok_stream = all(summary(streamed(family, case, p)) == case["expect"] for p in splits(case["text"]))
        n_whole += ok_whole
        n_stream += ok_stream
        if not (ok_whole and ok_stream):
            failing.append(case["id"])
    return len(cases), n_whole, n_stream, failing


def main() -> int:
    print(f"{'format':<12} {'cases':>5} {'whole':>6} {'streamed':>8}")
    for family in formats.names():
        n, w, s, failing = score(family)
        print(f"{family:<12} {n:>5} {w:>6} {s:>8}" + (f"   failing: {', '.join(failing)}" if failing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
