"""Which form of a tool result does the model answer best from? (the fallback tool format)

Where the chat template does not render tools (the embedded SmolLM2's), the package writes
tool results into the prompt itself, in one of ``render.RESULT_FORMS``. This script takes the
conversations of ``decisions.jsonl`` that end with all needed tool results (label "answer"),
renders them in each form, lets the model answer (``tool_choice="auto"``, greedy, calls
discouraged with ``tool_call_bias=(0, -100)`` so that the answer's text is what is measured)
and counts, per form:

- answered: the reply is text (no tool call) and not empty;
- uses the result: the text contains a value from the result (a number, an id, a name: the
  leaf values of a JSON result of 2-40 characters, or the numbers of a text result);
- leaks: the text holds ``<tool_call>`` or ``<tool_response>``;
- tokens: the mean reply length.

Results whose tool raised an error are skipped. The forms are compared on the dev split; the
package uses the best (``render.FALLBACK_RESULT_FORM``).

    python examples/tool_catalog/result_forms.py --split dev --limit 16
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent

from langchain_core.messages import convert_to_messages  # noqa: E402

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.progress import progress_bar  # noqa: E402
from langchain_attention_buckets.text import render  # noqa: E402

MARKERS = ("<tool_call>", "<tool_response>")


def salient(result: str) -> set[str]:
    """Values from a tool result that an answer using it would contain."""
    try:
        value = json.loads(result)
    except ValueError:
        return {n for n in re.findall(r"-?\d+(?:\.\d+)?", result)}
    out: set[str] = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            out.add(f"{v:g}" if isinstance(v, float) else str(v))
        elif isinstance(v, str) and 2 <= len(v) <= 40:
            out.add(v)

    walk(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--limit", type=int, default=16, help="conversations (default 16)")
    parser.add_argument("--bases", default="paper", help="'paper' (default) or one number")
    parser.add_argument("--forms", default=",".join(render.RESULT_FORMS), help="forms to compare")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in (HERE / "decisions.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["state"] == "results" and r["label"] == "answer" and r["split"] == args.split]
    rows = [r for r in rows if not r["messages"][-1]["content"].startswith("Error")][: args.limit]
    bases = args.bases if args.bases == "paper" else float(args.bases)
    llm = ChatAttentionBuckets(bases=bases, max_tokens=64, tool_call_bias=(0.0, -100.0))
    print(f"{len(rows)} conversations ({args.split} split), bases {args.bases}")
    table = {}
    for form in args.forms.split(","):
        render.FALLBACK_RESULT_FORM = form
        answered = uses = leaks = tokens = 0
        with progress_bar(len(rows), desc=form, unit="conv") as bar:
            for row in rows:
                ai = llm.bind_tools(row["tools"]).invoke(convert_to_messages(row["messages"]))
                text = ai.text.strip()
                answered += bool(text) and not (ai.tool_calls or ai.invalid_tool_calls)
                uses += any(v in text for v in salient(row["messages"][-1]["content"]))
                leaks += any(m in text for m in MARKERS)
                tokens += ai.usage_metadata["output_tokens"]
                bar.update(1)
        table[form] = (answered, uses, leaks, tokens / max(1, len(rows)))
    print(f"{'form':<15} {'answered':>9} {'uses the result':>16} {'leaks':>6} {'mean tokens':>12}")
    for form, (answered, uses, leaks, mean_tokens) in table.items():
        print(f"{form:<15} {answered:>5}/{len(rows):<3} {uses:>12}/{len(rows):<3} {leaks:>6} {mean_tokens:>12.1f}")


if __name__ == "__main__":
    sys.exit(main())
