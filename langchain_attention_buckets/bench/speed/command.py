"""The ``bench speed`` command: its arguments, the table of parts, and the loop that runs them.

Each part is a module with ``run(setup) -> dict`` (its entries of speed.json) and
``print_rows(result, setup)`` (its lines of the terminal table); :data:`PARTS` lists them
in the order they run. May import every part module and ``common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from ...engine import Engine
from ...engine.loading import ModelSpec, load_model
from ...progress import progress_bar
from . import agent, buckets, determinism, dtype, hf, mask, packed, prefix, spec
from .setup import Budget, Setup, failure, release_memory


class Part(NamedTuple):
    run: Callable[[Setup], dict]
    print_rows: Callable[[dict, Setup], None]
    default: bool = True  # run when --parts is not given


PARTS: dict[str, Part] = {  # in the order they run
    "buckets": Part(buckets.run, buckets.print_rows),
    "hf": Part(hf.run, hf.print_rows),
    "packed": Part(packed.run, packed.print_rows, default=False),
    "dtype": Part(dtype.run, dtype.print_rows, default=False),
    "mask": Part(mask.run, mask.print_rows),
    "spec": Part(spec.run, spec.print_rows),
    "agent": Part(agent.run, agent.print_rows),
    "prefix": Part(prefix.run, prefix.print_rows, default=False),
    "determinism": Part(determinism.run, determinism.print_rows, default=False),
}
# names that add columns to another part's rows (and run it) rather than rows of their own
EXTENDS = {"sequential": "buckets"}
CHOICES = (*PARTS, *EXTENDS)
DEFAULT_PARTS = ",".join([*(name for name, part in PARTS.items() if part.default), *EXTENDS])
_OPT_IN = [name for name, part in PARTS.items() if not part.default]


def _parts(text: str) -> frozenset[str]:
    names = frozenset(x.strip() for x in text.split(",") if x.strip())
    unknown = sorted(names - set(CHOICES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(CHOICES)}")
    return names


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--buckets", default="1,2,4,6,8", help="numbers of buckets (default 1,2,4,6,8)")
    p.add_argument("--lengths", default="256,1024,2048", help="prompt lengths in tokens (default 256,1024,2048)")
    p.add_argument("--decode-tokens", type=int, default=32, help="tokens generated per run (default 32)")
    p.add_argument("--repeats", type=int, default=3, help="counted runs per point, after one warm-up (default 3)")
    p.add_argument("--parts", type=_parts, default=DEFAULT_PARTS,
                   help=f"which measurements: {', '.join(CHOICES)} (default: all but {' and '.join(_OPT_IN)})")
    p.add_argument("--shape", default=None,
                   help="instead of --model: a shipped config.json shape with random weights "
                        "(llama-3.1-8b, qwen2.5-7b, tiny; parts buckets, sequential, hf, prefix)")
    p.add_argument("--output", default="bench-out/speed", help="folder for speed.json and speed.png")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start no measurement that would end later than this many seconds after the start "
                        "(model loading included); the ones left out are listed as skipped (default: no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# the parts that need no tokenizer or chat template (a random-weight --shape has neither)
SHAPE_PARTS = frozenset({"buckets", "sequential", "hf", "prefix", "packed"})


def _setup(args: argparse.Namespace) -> Setup:
    budget = Budget(getattr(args, "time_budget", None))  # counted from here: model loading included
    if args.shape:
        from .shapes import random_loaded

        if args.model:
            raise ValueError(f"--shape={args.shape!r} and --model={args.model!r}: give one of them")
        extra = sorted(set(args.parts) - SHAPE_PARTS)
        if extra:
            raise ValueError(f"--parts {','.join(extra)} need a real model; with --shape use {', '.join(sorted(SHAPE_PARTS))}")
        loaded = random_loaded(args.shape, args.device, args.dtype)
    else:
        loaded = load_model(ModelSpec(args.model, args.device, args.dtype))
    return Setup(
        loaded=loaded,
        engine=Engine(loaded, prefix_cache_bytes=0),
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        ns=[int(x) for x in args.buckets.split(",")],
        lengths=[int(x) for x in args.lengths.split(",")],
        decode_tokens=args.decode_tokens,
        repeats=args.repeats,
        parts=args.parts,
        progress=False if args.no_progress else None,
        budget=budget,
    )


def _header(setup: Setup) -> dict[str, Any]:
    loaded = setup.loaded
    return {
        "model": loaded.name,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "fast_paths": dataclasses.asdict(setup.engine.fast_paths),  # switches on for this run (engine.fastpaths)
        "hardware": _hardware(loaded.device),
        "settings": {"buckets": setup.ns, "lengths": setup.lengths, "decode_tokens": setup.decode_tokens,
                     "repeats": setup.repeats},
    }


def speed_main(args: argparse.Namespace) -> int:
    """Run the parts; 1 if one of them failed (its error is in speed.json's ``errors``), else 0.

    speed.json is written after every measured point (``Setup.partial``) and every part, so a
    run stopped from outside keeps what it measured; a part that fails leaves its error there
    and the next part runs (on a GPU, the next part may well work where this one did not)."""
    setup = _setup(args)
    wanted = {EXTENDS.get(name, name) for name in setup.parts}
    out = _header(setup)
    names = [name for name in PARTS if name in wanted]
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)

    def save(result: dict | None = None) -> None:
        out.update(result or {})
        tmp = folder / "speed.json.tmp"  # replaced in one step: a reader never sees half a file
        tmp.write_text(json.dumps(out, indent=2))
        tmp.replace(folder / "speed.json")

    setup = dataclasses.replace(setup, on_partial=save)
    save()
    with progress_bar(len(names), desc="bench speed", unit="part", progress=setup.progress) as bar:
        for name in names:
            bar.set_postfix_str(name)
            try:
                result = PARTS[name].run(setup)
            except Exception as exc:  # recorded; the other parts still run
                traceback.print_exc()
                out.setdefault("errors", {})[name] = failure(exc)
                result = None
            if result is None:
                release_memory(setup.loaded.device)  # after the error is gone: its traceback held tensors
                save()
                bar.update()
                continue
            PARTS[name].print_rows(result, setup)
            save(result)
            bar.update()
    if any("ttft_s" in row for row in out.get("buckets", [])):
        try:
            buckets.plot_speed(out, folder / "speed.png")
        except ImportError as exc:  # matplotlib is not needed for the numbers (a bare GPU machine)
            print(f"no speed.png: {exc}")
    print(f"wrote {folder / 'speed.json'}")
    return 1 if out.get("errors") else 0


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"
