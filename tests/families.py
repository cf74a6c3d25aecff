"""Tiny random models of each tool-calling family, with the family's real chat template.

Each family is the embedded model's tokenizer (tests/data/smollm2-tokenizer) with the family's
special tokens added, the family's chat template from tests/data/templates set, and a random
model of the family's architecture (two layers, hidden size 32) sized to that vocabulary. They
load like any local model folder and build in about a second; the `family_dir` fixture in
conftest.py builds each once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
TEMPLATES = DATA / "templates"


@dataclass(frozen=True)
class Family:
    template: str  # file in tests/data/templates
    model_type: str  # transformers architecture
    special: tuple[str, ...]  # control tokens (special: skipped by skip_special_tokens)
    added: tuple[str, ...] = ()  # tokens of their own that are text (Qwen's <tool_call>, <think>)
    bos: str | None = None
    eos: str | None = None
    config: tuple[tuple[str, object], ...] = ()  # the architecture's own settings


FAMILIES: dict[str, Family] = {
    "llama3": Family(
        "meta-llama-Llama-3.3-70B-Instruct.jinja",
        "llama",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
    ),
    "llama3.2": Family(  # the 1B / 3B template: no built-in tools, today's date (strftime_now)
        "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "llama",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
    ),
    "qwen2.5": Family(
        "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", ("<|im_start|>", "<|im_end|>"), ("<tool_call>", "</tool_call>"),
        eos="<|im_end|>",
    ),
    "qwen3": Family(
        "Qwen-Qwen3-0.6B.jinja", "qwen3", ("<|im_start|>", "<|im_end|>"),
        ("<tool_call>", "</tool_call>", "<think>", "</think>", "<tool_response>", "</tool_response>"), eos="<|im_end|>",
    ),
    "hermes3": Family(
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "llama", ("<|begin_of_text|>", "<|im_start|>", "<|im_end|>"),
        ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"), bos="<|begin_of_text|>", eos="<|im_end|>",
    ),
    "mistral": Family(
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "mistral",
        ("<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
         "[/TOOL_RESULTS]"),
        bos="<s>",
        eos="</s>",
    ),
    "mistral-v11": Family(
        "mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja",
        "mistral",
        ("<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]",
         "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[TOOL_CONTENT]", "[/TOOL_RESULTS]"),
        bos="<s>",
        eos="</s>",
    ),
    "deepseek-r1": Family(
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "qwen2",
        ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"), ("<think>", "</think>"),
        bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>",
    ),
    "smollm3": Family(  # four layers: the last without RoPE, as every fourth is in SmolLM3
        "HuggingFaceTB-SmolLM3-3B.jinja", "smollm3", ("<|im_start|>", "<|im_end|>"), ("<think>", "</think>"),
        eos="<|im_end|>", config=(("num_hidden_layers", 4),),
    ),
    "granite": Family(
        "ibm-granite-granite-3.3-2B-Instruct.jinja", "granite",
        ("<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>"), eos="<|end_of_text|>",
    ),
}


def family_tokenizer(name: str):
    """The embedded tokenizer with family ``name``'s tokens and chat template."""
    from transformers import AutoTokenizer

    fam = FAMILIES[name]
    tok = AutoTokenizer.from_pretrained(str(DATA / "smollm2-tokenizer"))
    tok.add_special_tokens({"additional_special_tokens": list(fam.special)})
    if fam.added:
        tok.add_tokens(list(fam.added))
    if fam.bos:
        tok.bos_token = fam.bos
    if fam.eos:
        tok.eos_token = fam.eos
    tok.chat_template = (TEMPLATES / fam.template).read_text()
    return tok


def build_family(name: str, folder: Path, seed: int = 0) -> Path:
    """Write a tiny random model of family ``name`` with its tokenizer into ``folder``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fam = FAMILIES[name]
    tok = family_tokenizer(name)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    settings = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    cfg = AutoConfig.for_model(fam.model_type, **{**settings, **dict(fam.config)})
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    return folder
