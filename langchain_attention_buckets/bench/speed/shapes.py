"""Random-weight models of real shapes, for speed runs without weights (``bench speed --shape``).

A forward pass takes as long with random weights as with trained ones, so the speed of a
Llama-3.1-8B or Qwen2.5-7B shape can be measured on a machine with no model files and no
network: the package ships their config.json (``bench/shapes/*.json``) and the model is built
from it directly on the device, in the asked dtype. Token ids stand in for text
(``IdTokenizer``). Answers are meaningless; only times and memory are measured.

May import the engine's loading and rope modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...engine.loading import LoadedModel, ModelSpec, resolve_device, resolve_dtype
from ...engine.rope import check_supported, head_dim, model_base

SHAPES_DIR = Path(__file__).resolve().parent.parent / "shapes"


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def shape_config(name: str) -> dict:
    """The config.json of a shipped shape, or ValueError naming the shapes there are."""
    path = SHAPES_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"shape={name!r} is not shipped; choose from {', '.join(shape_names())}")
    return json.loads(path.read_text())


class IdTokenizer:
    """Text -> token ids without a vocabulary file: each byte of the text is one id (>= 3)."""

    def __init__(self, vocab_size: int, eos_token_id: int):
        self.vocab_size, self.eos_token_id = vocab_size, eos_token_id

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [3 + b % (self.vocab_size - 3) for b in text.encode()]

    def decode(self, ids, **kwargs) -> str:
        return ""

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False, **kwargs):
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + ("<assistant>" if add_generation_prompt else "")
        return self.encode(text) if tokenize else text


def random_loaded(name: str, device: str = "auto", dtype: str = "auto", seed: int = 0) -> LoadedModel:
    """The shipped shape ``name`` with random weights, built on the device in the dtype."""
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = shape_config(name)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    cfg = AutoConfig.for_model(raw["model_type"], **{k: v for k, v in raw.items() if k != "model_type"})
    torch.manual_seed(seed)
    with torch.device(dev):  # initialised where it runs: an 8B model in seconds on a GPU
        model = AutoModelForCausalLM.from_config(cfg, dtype=dt, attn_implementation="sdpa")
    model.eval()
    check_supported(model)
    eos = raw.get("eos_token_id", 2)
    eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
    names = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
    return LoadedModel(
        model=model,
        tokenizer=IdTokenizer(int(cfg.vocab_size), min(eos_ids)),
        name=f"{name} (random weights)",
        device=dev,
        dtype=dt,
        eos_token_ids=eos_ids,
        max_positions=int(cfg.max_position_embeddings),
        head_dim=head_dim(cfg),
        base=model_base(cfg),
        vocab_size=int(cfg.vocab_size),
        spec=ModelSpec(None, str(dev), names[dt]),
    )
