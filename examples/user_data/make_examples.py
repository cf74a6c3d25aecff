"""Write tools.jsonl and qa.jsonl beside this file: example items in the user JSONL format.

The items come from the accuracy bench's own generators (seed 7), written the way a user's data
would be (docs/bench.md, "Your own data"): 8 tool-selection requests over 8 tools each, and 8
questions over 6 documents each, half marked "dev" and half "test".

    python examples/user_data/make_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

from langchain_attention_buckets.bench.tasks import get_task

HERE = Path(__file__).parent
ROWS, SEED = 8, 7


def rows(task: str, n_items: int) -> list[dict]:
    out = []
    for s in get_task(task).make_samples(n_items=n_items, positions=[0], samples_per_position=ROWS, seed=SEED):
        split = "dev" if s.question_index % 2 == 0 else "test"
        if task == "tools":
            out.append({"kind": "tool", "request": s.question, "tools": s.tools(), "answer": s.answer,
                        "arguments": s.answer_args, "split": split})
        else:
            out.append({"kind": "qa", "question": s.question, "documents": [it.text for it in s.items],
                        "gold": 0, "answers": [s.answer], "split": split})
    return out


if __name__ == "__main__":
    for name, task, n in (("tools.jsonl", "tools", 8), ("qa.jsonl", "qa", 6)):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows(task, n))
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
