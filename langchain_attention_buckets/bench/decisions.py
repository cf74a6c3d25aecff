"""``attention-buckets bench decisions``: how well ``tool_choice="auto"`` decides, and its calibration.

The data: labelled conversations in a JSONL file, one per line, in OpenAI's chat format:

    {"messages": [{"role": "user", "content": "..."}, ...], "tools": [{"type": "function", ...}, ...],
     "label": "call" | "answer", "split": "dev" | "test", "id": "..."}

``label`` is what the assistant should do next (open a tool call, or answer in text);
``split`` (optional: a hash of the first user message decides) keeps calibration and
report apart; ``id`` (optional) names the row. The project's own set is
``examples/tool_catalog/decisions.jsonl`` (made by ``make_decisions.py`` beside it).

For each conversation and bucket configuration the benchmark renders the prompt exactly as a
call with those tools bound would (``tool_choice="auto"``), runs the first step, merges the
buckets' logits and records the margin ``logit(opener) - max(other tokens)``: with a bias
``b`` on the opener (``decision.DecisionConstraint``), greedy decoding opens a call iff
``margin + b > 0``. So one pass per conversation gives the decision under every bias. Per
conversation state ("before": no tool result since the latest user message; "after"), the
bias that does best on the dev split is chosen (``CRITERION``: balanced accuracy before
results, accuracy after; ties: the smallest magnitude); the report gives the test split's
accuracy with no bias (the model alone), with the package's default, and with the bias chosen
here, and the dev/test confusion counts.

Margins are cached in ``--output`` (``margins.jsonl``), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from ..progress import progress_bar

DEFAULT_DATA = Path("examples") / "tool_catalog" / "decisions.jsonl"
CONFIGS = ("one", "paper")
GRID = [x / 4 for x in range(-48, 49)]  # biases tried: -12 to 12 in steps of 0.25


def load_rows(path: Path) -> list[dict]:
    """The labelled conversations of ``path``, each checked; ValueError names the bad line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (give the labelled conversations with --data)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in ("call", "answer"):
            raise ValueError(f"{path}:{n}: label={row.get('label')!r}; allowed: 'call', 'answer'")
        if not row.get("messages") or not row.get("tools"):
            raise ValueError(f"{path}:{n}: needs non-empty 'messages' and 'tools'")
        if row.get("split", "dev") not in ("dev", "test"):
            raise ValueError(f"{path}:{n}: split={row['split']!r}; allowed: 'dev', 'test'")
        first = next((m.get("content", "") for m in row["messages"] if m.get("role") == "user"), "")
        row.setdefault("split", "dev" if int(hashlib.sha256(str(first).encode()).hexdigest(), 16) % 2 == 0 else "test")
        row.setdefault("id", f"line-{n}")
        rows.append(row)
    return rows


def margins(rows: list[dict], llm, cache: Path | None, label: str, progress: bool | None = None) -> dict[str, dict]:
    """{row id: {"margin", "state"}} for ``llm`` (a ChatAttentionBuckets), cached in ``cache``."""
    import torch
    from langchain_core.messages import convert_to_messages

    from ..chat.call import prompt_ids
    from ..chat.decision import conversation_state, opener_ids
    from ..engine.forward import forward_buckets
    from ..engine.merge import merge
    from ..text.messages import to_chat_dicts
    from ..text.render import call_format

    done = _read_cache(cache, label)
    loaded = llm.load()
    fmt = call_format(loaded.tokenizer, llm.tool_format, llm.reasoning_format)  # the model family's own opener
    bases, opener = llm.resolved_bases(), opener_ids(loaded.tokenizer, fmt.openers[0])[0]
    todo = [r for r in rows if r["id"] not in done]
    with progress_bar(len(todo), desc=f"margins ({label})", unit="conv", progress=progress) as bar:
        for row in todo:
            dicts = to_chat_dicts(convert_to_messages(row["messages"]))
            ids = prompt_ids(loaded.tokenizer, dicts, llm.call_options(tools=row["tools"]), fmt=fmt)
            logits = forward_buckets(loaded.model, ids, bases, logits_to_keep=1)[:, -1]  # (n, V)
            merged = merge(logits[None], llm.aggregation)[0].float()
            other = merged.clone()
            other[opener] = -torch.inf
            done[row["id"]] = {"margin": float(merged[opener] - other.max()), "state": conversation_state(dicts)}
            if cache is not None:
                with cache.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"config": label, "id": row["id"], **done[row["id"]]}) + "\n")
            bar.update(1)
    return done


def _read_cache(cache: Path | None, label: str) -> dict[str, dict]:
    if cache is None or not cache.is_file():
        return {}
    out = {}
    for line in cache.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["config"] == label:
            out[entry["id"]] = {"margin": entry["margin"], "state": entry["state"]}
    return out


def score(items: list[tuple[float, str]], bias: float) -> dict[str, Any]:
    """Decisions of (margin, label) items under ``bias``: counts, accuracy and balanced accuracy."""
    counts = {"call": [0, 0], "answer": [0, 0]}  # label -> [right, total]
    for margin, label in items:
        called = margin + bias > 0
        counts[label][1] += 1
        counts[label][0] += called == (label == "call")
    rates = [right / total for right, total in counts.values() if total]
    right = sum(c[0] for c in counts.values())
    total = sum(c[1] for c in counts.values())
    return {
        "n": total,
        "accuracy": right / total if total else None,
        "balanced": sum(rates) / len(rates) if rates else None,
        "call_right": counts["call"],
        "answer_right": counts["answer"],
    }


CRITERION = {"before": "balanced", "after": "accuracy"}
"""What the bias maximises, per state. Before results: balanced accuracy, since how many
no-tool requests a labelled set holds is arbitrary. After results: accuracy over the rows as
labelled, since a needless call there costs more than an early answer (the agent calls again,
and can loop until its recursion limit), and answering is the common case (every request ends
with it; only multi-tool requests pass "call" states)."""


def calibrate(items: list[tuple[float, str]], criterion: str = "balanced") -> float:
    """The bias with the best ``criterion`` ("balanced" or "accuracy") on ``items`` (ties: the
    smallest magnitude)."""
    if not items:
        return 0.0
    return max(GRID, key=lambda b: (round(score(items, b)[criterion], 9), -abs(b)))


def report(rows: list[dict], found: dict[str, dict], default) -> dict[str, Any]:
    """Per state: the bias chosen on dev, and dev/test scores with none, the default and the chosen one."""
    out = {}
    for state in ("before", "after"):
        split = {s: [(found[r["id"]]["margin"], r["label"]) for r in rows if r["split"] == s and found[r["id"]]["state"] == state]
                 for s in ("dev", "test")}
        chosen = calibrate(split["dev"], CRITERION[state])
        out[state] = {
            "chosen_bias": chosen,
            "default_bias": default.bias(state),
            **{f"{s}_{name}": score(split[s], b) for s in ("dev", "test")
               for name, b in (("none", 0.0), ("default", default.bias(state)), ("chosen", chosen))},
        }
    return out


def add_decisions_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help=f"labelled conversations, JSONL (default: {DEFAULT_DATA})")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="bucket configurations, comma-separated: 'one' (the model's own base), 'paper' (default: one,paper)")
    p.add_argument("--aggregation", default="confidence", choices=["confidence", "mean", "max"], help="merge rule")
    p.add_argument("--limit", type=int, default=None, help="use the first N conversations of each split, label and state")
    p.add_argument("--output", default=None, help="folder for margins.jsonl (resumable) and decisions.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def decisions_main(args: argparse.Namespace) -> int:
    from ..chat.decision import resolve_decision
    from ..chat.model import ChatAttentionBuckets
    from ..engine.loading import EMBEDDED_MODEL_NAME

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad or not configs:
        raise SystemExit(f"--configs {args.configs!r}: allowed names are {', '.join(CONFIGS)}")
    rows = _limited(load_rows(Path(args.data)), args.limit)
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    probe = ChatAttentionBuckets(model=args.model)
    own = probe.load().base
    default = resolve_decision("auto", probe.load().name == EMBEDDED_MODEL_NAME)
    results = {}
    for config in configs:
        llm = ChatAttentionBuckets(model=args.model, bases=own if config == "one" else "paper", aggregation=args.aggregation)
        found = margins(rows, llm, out_dir / "margins.jsonl" if out_dir else None, config, False if args.no_progress else None)
        results[config] = report(rows, found, default)
    _print(results, len(rows))
    if out_dir:
        (out_dir / "decisions.json").write_text(json.dumps({"data": args.data, "results": results}, indent=2))
        print(f"wrote {out_dir / 'decisions.json'}")
    return 0


def _limited(rows: list[dict], limit: int | None) -> list[dict]:
    """The first ``limit`` rows of each split, label and conversation state."""
    from ..chat.decision import conversation_state

    if limit is None:
        return rows
    seen: dict[tuple, int] = {}
    out = []
    for r in rows:
        key = (r["split"], r["label"], conversation_state(r["messages"]))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= limit:
            out.append(r)
    return out


def _print(results: dict, n: int) -> None:
    print(f"{n} labelled conversations; decisions at the answer's first token (greedy)")
    head = f"{'config':<7} {'state':<7} {'bias':>18} {'test accuracy':>14} {'balanced':>9}"
    print(f"{head} {'calls right':>12} {'answers right':>14}")
    for config, states in results.items():
        for state, r in states.items():
            for name in ("none", "default", "chosen"):
                s = r[f"test_{name}"]
                if not s["n"]:
                    continue
                bias = {"none": 0.0, "default": r["default_bias"], "chosen": r["chosen_bias"]}[name]
                c, a = s["call_right"], s["answer_right"]
                print(
                    f"{config:<7} {state:<7} {name + f' ({bias:+g})':>18} {s['accuracy']:>14.1%} {s['balanced']:>9.1%}"
                    f" {c[0]:>6}/{c[1]:<5} {a[0]:>7}/{a[1]:<6}"
                )
