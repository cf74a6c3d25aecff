"""Serving: an OpenAI-compatible HTTP server over one engine, and Ray Serve replicas of it.

- ``protocol``: the request body, checked, and OpenAI-shaped errors.
- ``convert``: OpenAI messages in, ``chat.completion`` / ``chat.completion.chunk`` out.
- ``app``: the FastAPI application (``create_app``, ``ServerSettings``): authentication, limits,
  admission, disconnects, streaming.
- ``args`` and ``run``: the ``attention-buckets serve`` command (uvicorn on one machine).
- ``ray_app``: Ray Serve replicas with session affinity.

Needs the ``serve`` extra (FastAPI, uvicorn; Ray Serve for ``ray_app``):
``pip install "langchain-attention-buckets[serve]"``. Importing this package imports none of them;
its names load on first use.
"""

from __future__ import annotations

__all__ = ["API_KEY_ENV", "ServerSettings", "create_app"]


def __getattr__(name: str):
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
