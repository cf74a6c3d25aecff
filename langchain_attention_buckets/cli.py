"""The ``attention-buckets`` command.

    attention-buckets bases [--plot FILE]       the base set chosen for a model, and its waveforms
    attention-buckets bench accuracy ...        accuracy against the position of the essential information
    attention-buckets bench speed ...           prefill/decode throughput, time to first token, memory
    attention-buckets bench memory ...          resident memory and the prefix cache over many varied calls
    attention-buckets bench decisions ...       tool_choice="auto": call-or-answer accuracy, bias calibration
    attention-buckets bench serve ...           a bounded load run of agent sessions against the server
    attention-buckets serve ...                 an OpenAI-compatible server (docs/serving.md)
    attention-buckets tune --task T ...         choose bases and merge rule on a dev split, test, write a preset

The agent demo (the main job) is ``python examples/agent_demo.py``: it needs the example
tool catalog next to it, which is not part of the package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# imported here, not in the handlers, so that a broken command fails on --help too
from .bench.accuracy import accuracy_main, add_accuracy_arguments
from .bench.compare import add_compare_arguments, compare_main
from .bench.decisions import add_decisions_arguments, decisions_main
from .bench.load import add_serve_bench_arguments, serve_bench_main
from .bench.memory import add_memory_arguments, memory_main
from .bench.speed import add_speed_arguments, speed_main
from .bench.tune import add_tune_arguments, tune_main
from .engine.bases import NAMED_RATIOS, auto_distance_range, coverage, plot_bases, resolve_bases
from .engine.loading import EMBEDDED_MODEL_NAME, converted_checkpoint, embedded_model_path
from .engine.rope import head_dim, model_base
from .serve.args import add_serve_arguments


def _model_facts(model: str | None) -> tuple[str, int, float, int]:
    """(name, head_dim, rope base, context length) of a model, reading only its config."""
    from transformers import AutoConfig

    if model is None or model.endswith(".gguf"):
        path = embedded_model_path() if model is None else os.path.expanduser(model)
        folder, name = converted_checkpoint(Path(path)), EMBEDDED_MODEL_NAME if model is None else Path(path).stem
    else:
        folder, name = model, model
    cfg = AutoConfig.from_pretrained(str(folder))
    return name, head_dim(cfg), model_base(cfg), int(cfg.max_position_embeddings)


def cmd_bases(args: argparse.Namespace) -> int:
    name, d, base, ctx = _model_facts(args.model)
    ctx = args.context or ctx
    bases = resolve_bases(args.set, head_dim=d, base=base, context_length=ctx, n=args.n if args.set == "auto" else None)
    lo, hi = auto_distance_range(ctx)
    cov = coverage(bases, head_dim=d, min_distance=lo, max_distance=hi)
    print(f"model {name}: head_dim {d}, rope base {base:g}, context {ctx}")
    print(f"{args.set} bases ({len(bases)}): " + ", ".join(f"{b:g}" for b in bases))
    print("ratios to the model's base: " + ", ".join(f"{b / base:.3g}" for b in bases))
    print(
        f"coverage over distances {lo}-{hi}: worst {cov['worst']:.2f} (one base alone: {cov['single_worst']:.2f}), "
        f"mean {cov['mean']:.2f} (one base: {cov['single_mean']:.2f})"
    )
    if args.plot:
        plot_bases(bases, head_dim=d, min_distance=lo, max_distance=hi, path=args.plot)
        print(f"wrote {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attention-buckets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bases", help="print (and plot) the base set chosen for a model")
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    p.add_argument("--set", default="auto", choices=["auto", *NAMED_RATIOS], help="which set (default: auto)")
    p.add_argument("--n", type=int, default=6, help="number of bases for 'auto' (default 6)")
    p.add_argument("--context", type=int, default=None, help="context length to cover (default: the model's)")
    p.add_argument("--plot", default=None, metavar="FILE", help="write the waveforms and their envelope to a PNG")
    p.set_defaults(func=cmd_bases)

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    add_accuracy_arguments(bench.add_parser("accuracy", help="accuracy against the position of the key item"))
    bench.choices["accuracy"].set_defaults(func=accuracy_main)
    add_speed_arguments(bench.add_parser("speed", help="throughput, latency and memory against the number of buckets"))
    bench.choices["speed"].set_defaults(func=speed_main)
    add_memory_arguments(bench.add_parser("memory", help="resident memory and the prefix cache over many varied calls"))
    bench.choices["memory"].set_defaults(func=memory_main)
    add_decisions_arguments(bench.add_parser("decisions", help='tool_choice="auto": call-or-answer accuracy and its calibration'))
    bench.choices["decisions"].set_defaults(func=decisions_main)
    add_compare_arguments(bench.add_parser("compare", help="several accuracy runs side by side: paired differences to plain"))
    bench.choices["compare"].set_defaults(func=compare_main)
    p = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (needs the 'serve' extra)")
    add_serve_arguments(p)
    p.set_defaults(func=_serve)
    add_serve_bench_arguments(bench.add_parser("serve", help="a bounded load run of agent-like sessions against the server"))
    bench.choices["serve"].set_defaults(func=serve_bench_main)

    p = sub.add_parser("tune", help="choose a configuration for a task on a dev split, test it on held-out data, write a preset")
    add_tune_arguments(p)
    p.set_defaults(func=tune_main)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .serve.run import serve_main  # FastAPI and uvicorn: imported only when serving

    return serve_main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
