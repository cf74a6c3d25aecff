"""Presets: chat-model settings saved in a JSON file (``attention-buckets tune`` writes one) or named.

A preset file is one JSON object of ``ChatAttentionBuckets`` field names and values, e.g.
``{"bases": "paper", "aggregation": "max"}``; its ``"tuned"`` entry (what ``tune`` chose it on,
and how it did) is kept for people and ignored here. A name is one of the accuracy bench's
configurations (``chat.configs.CONFIGS``) that a chat model runs alone: those with bases of
their own (the plain model needs no preset) and without context reordering.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

METADATA_KEYS = frozenset({"tuned"})
_NOT_SETTINGS = frozenset({"preset"})


def builtin_presets() -> dict[str, dict[str, Any]]:
    """{name: settings} from the bench's configuration registry."""
    from .configs import CONFIGS

    return {name: {k: v for k, v in c.to_dict().items() if k not in ("name", "reorder") and v is not None}
            for name, c in CONFIGS.items() if not c.reorder and c.bases is not None}


def load_preset(spec: str | os.PathLike, fields: Iterable[str]) -> dict[str, Any]:
    """The settings of a preset file or name, each key one of ``fields``.

    Raises:
        ValueError: A missing file, a file that is not a JSON object, an unknown key, an unknown
            name; each names the file or name and what is allowed.
    """
    allowed = sorted(set(fields) - _NOT_SETTINGS)
    text = os.fspath(spec)
    names = builtin_presets()
    if text in names:
        return dict(names[text])
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"preset={text!r}: no such file and not a built-in preset; allowed: a JSON file "
                         f"(attention-buckets tune writes one) or one of {', '.join(names)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"preset file {str(path)!r} is not valid JSON ({e}); allowed: one JSON object "
                         'of settings, e.g. {"bases": "paper", "aggregation": "max"}') from None
    if not isinstance(data, dict):
        raise ValueError(f"preset file {str(path)!r} holds a JSON {type(data).__name__}; allowed: one JSON "
                         'object of settings, e.g. {"bases": "paper", "aggregation": "max"}')
    unknown = sorted(set(data) - set(allowed) - METADATA_KEYS)
    if unknown:
        raise ValueError(f"preset file {str(path)!r}: unknown setting {unknown[0]!r}; allowed: "
                         f"{', '.join(allowed)} (and 'tuned', which is not applied)")
    return {k: v for k, v in data.items() if k not in METADATA_KEYS}
