"""Where a model's parts run: one device, or several under accelerate's ``device_map``.

A model loaded with ``device_map`` (``"auto"``, or an explicit map of modules to devices,
``"cpu"`` or ``"disk"``) carries accelerate hooks (``module._hf_hook``) that move each
module's inputs to its *execution device* and, for offloaded modules, load its weights
there for the duration of its forward pass (their parameters otherwise sit on the ``meta``
device). The engine needs three facts from that placement: where token ids go in (the
embeddings' execution device), where each layer writes its keys and values (its attention's
execution device: the KV cache of that layer is kept there), and whether hooks are in play
at all (then the packed CPU copies of ``packed.py``, which bypass module forwards, are off).

A model sharded with transformers' tensor parallelism (``tp_plan``, one process per device
under ``torchrun``) holds in each process a share of every layer's heads: its KV cache holds
that share (``kv_heads``), and packed copies are off there too (the shards' all-reduces are
module hooks).

May import: torch. Reads accelerate's hooks by attribute only (accelerate is not imported).
"""

from __future__ import annotations

import torch
from torch import nn


def _hook_device(module: nn.Module) -> torch.device | None:
    """The execution device an accelerate hook on ``module`` names, or None."""
    hook = getattr(module, "_hf_hook", None)
    hooks = getattr(hook, "hooks", None) or ([hook] if hook is not None else [])  # SequentialHook or one
    for h in hooks:
        device = getattr(h, "execution_device", None)
        if device is not None:
            return torch.device(device)
    return None


def _tensor_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter or buffer not on ``meta``, or None."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return None


def execution_device(*modules: nn.Module) -> torch.device | None:
    """Where the first of ``modules`` with a hint runs: a hook's execution device first (the
    modules are searched in order), else where its weights are; None: no hint at all."""
    for module in modules:
        device = _hook_device(module)
        if device is not None:
            return device
    for module in modules:
        device = _tensor_device(module)
        if device is not None:
            return device
    return None


def input_device(model: nn.Module) -> torch.device:
    """Where token ids must be for ``model``: its embeddings' execution device."""
    embeddings = model.get_input_embeddings()
    return execution_device(embeddings, model) or torch.device("cpu")


def layer_devices(model: nn.Module) -> tuple[torch.device, ...]:
    """Per decoder layer, the device its attention runs on (where its keys and values live)."""
    default = input_device(model)
    out = []
    for layer in model.base_model.layers:
        attention = getattr(layer, "self_attn", layer)
        out.append(execution_device(attention, layer) or default)
    return tuple(out)


def is_dispatched(model: nn.Module) -> bool:
    """Whether accelerate hooks are attached (a ``device_map`` load, offloading, some quantizers)."""
    return any(getattr(m, "_hf_hook", None) is not None for m in model.modules())


def tensor_parallel_size(model: nn.Module) -> int:
    """The degree of transformers' tensor parallelism (``tp_plan``) the model was sharded with; 1: none."""
    return int(getattr(model, "tp_size", None) or 1)


def kv_heads(model: nn.Module) -> int:
    """KV heads that each layer's cache holds in this process: the config's, or this rank's
    share under tensor parallelism (the key/value projections are split by heads)."""
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    tp = tensor_parallel_size(model)
    if heads % tp:
        raise ValueError(f"tensor parallelism over {tp} processes cannot split {heads} KV heads evenly")
    return heads // tp


def canonical(device: torch.device | str) -> torch.device:
    """``device`` with its index made explicit ("cuda" -> "cuda:<current>"), so equal devices compare equal."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return torch.device("cuda", index)
    return device
