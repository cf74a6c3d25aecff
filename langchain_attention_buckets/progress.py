"""Progress bars for work that takes more than a few seconds; one rule for when they are shown.

Every long operation (the first-run GGUF conversion, embedding a tool catalog, the
benchmarks) takes its bar from :func:`progress_bar`, which writes to stderr and is
shown when:

1. the caller says so (``progress=True`` / ``False``), else
2. the environment says so (``ATTENTION_BUCKETS_PROGRESS=1`` / ``0``), else
3. the stream is a terminal (so logs, pipes and CI stay clean).

A hidden bar is a real ``tqdm`` with ``disable=True``: callers update it the same way.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import IO, Any

ENV_VAR = "ATTENTION_BUCKETS_PROGRESS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def progress_enabled(progress: bool | None = None, stream: IO | None = None) -> bool:
    """Whether a bar on ``stream`` (default stderr) is shown: argument, then environment, then is-a-terminal."""
    if progress is not None:
        return bool(progress)
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in _ON:
        return True
    if env in _OFF:
        return False
    if env:
        warnings.warn(f"{ENV_VAR}={env!r} is not understood; use 1 or 0 (shown only on a terminal)", stacklevel=3)
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # closed or detached stream
        return False


def progress_bar(
    total: int | None = None,
    *,
    desc: str,
    unit: str = "it",
    progress: bool | None = None,
    file: IO | None = None,
    **kwargs: Any,
):
    """A ``tqdm`` bar on stderr (or ``file``), hidden unless :func:`progress_enabled` says otherwise."""
    from tqdm import tqdm

    file = sys.stderr if file is None else file
    return tqdm(
        total=total, desc=desc, unit=unit, file=file, disable=not progress_enabled(progress, file),
        dynamic_ncols=True, **kwargs,
    )
