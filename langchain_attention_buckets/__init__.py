"""Attention Buckets for LangChain: a local chat model that reads long contexts better.

Attention Buckets (Chen et al., arXiv 2312.04455) runs one prompt through N copies
of a RoPE model, each with its own rotary base, so that where one copy's attention
is in a trough another's is at a peak; their next-token logits are merged at every
step. ``ChatAttentionBuckets`` does this under a LangChain chat model.

The data flow and the floors (one folder each: ``engine/`` the model side, ``formats/`` and
``text/`` text in and out, ``constrain/`` grammars, ``chat/`` the LangChain edge, ``retrieval/``,
``serve/`` and ``bench/`` above it, ``cli`` on top) are described once, in docs/architecture.md.
"""

from .chat.model import ChatAttentionBuckets

__version__ = "0.1.0"
__all__ = ["ChatAttentionBuckets", "__version__"]
