"""The arguments of ``attention-buckets serve`` (no FastAPI import: the CLI reads them for --help; the
choices listed come from the settings they set)."""

from __future__ import annotations

import argparse

from ..chat.settings import ADAPTIVE
from ..engine.bases import BASE_SET_NAMES
from ..engine.merge import MERGE_RULES

API_KEY_ENV = "ATTENTION_BUCKETS_API_KEY"
"""The environment variable read for the API key when none is given."""


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--served-name", default=None, help="the model id clients send (default: the model's name)")
    names = ", ".join(f'"{n}"' for n in (ADAPTIVE, *BASE_SET_NAMES))
    p.add_argument("--bases", default=None,
                   help=f'default bases: {names}, a number or a comma-separated list (default "{ADAPTIVE}")')
    p.add_argument("--aggregation", default=None,
                   help=f"default merge rule: {', '.join(MERGE_RULES)} (default confidence)")
    p.add_argument("--device", default=None, help='"auto", "cpu", "cuda" or "cuda:N"')
    p.add_argument("--dtype", default=None, help='"auto", "float32", "bfloat16" or "float16"')
    p.add_argument("--max-tokens", type=int, default=None, help="default most new tokens per answer (default 512)")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help='from_pretrained arguments as JSON, e.g. \'{"device_map": "auto"}\'')
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one)")
    p.add_argument("--api-key", default=None, help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set)")
    p.add_argument("--allow-no-key", action="store_true", help="allow binding a non-loopback address without an API key")
    p.add_argument("--max-concurrent", type=int, default=16, help="requests generating at once (default 16)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond those; more get a 503 (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="largest request body (default 8 MiB)")
    p.add_argument("--ray", action="store_true", help="run on Ray Serve (one engine per replica)")
    p.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (with --ray; default 1)")
    p.add_argument("--replica-cpus", type=float, default=None, help="CPUs per replica (with --ray)")
    p.add_argument("--replica-gpus", type=float, default=None, help="GPUs per replica (with --ray)")
    p.add_argument("--max-replicas", type=int, default=None,
                   help="autoscale between --replicas and this many replicas (with --ray)")
    p.add_argument("--max-ongoing-requests", type=int, default=None,
                   help="requests Ray sends one replica at once (with --ray; default 48)")
    p.add_argument("--no-affinity", action="store_true",
                   help="spread requests uniformly instead of by session (with --ray)")
