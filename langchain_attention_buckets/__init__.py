"""Attention Buckets for LangChain: a local chat model that reads long contexts better.

Attention Buckets (Chen et al., arXiv 2312.04455) runs one prompt through N copies
of a RoPE model, each with its own rotary base, so that where one copy's attention
is in a trough another's is at a peak; their next-token logits are merged at every
step. ``ChatAttentionBuckets`` does this under a LangChain chat model.

The data flow, one module per stage:

    messages --render--> prompt text --encode--> token ids
      --engine (rope: N rows, each its own base; kvcache: per-row and prefix caches)--> N logit rows
      --merge--> one row --constrain (grammar mask)--> --sampling--> token
      --detok--> text --parse--> AIMessage(content, tool_calls, usage)

Floors, each importing only the ones below:

    ground   loading, rope, bases, merge, sampling, kvcache, detok, engine ·
             render · parse · constrain · tool_format
    above    chat_model (wires render -> engine -> parse, gives the engine the grammar)
    above    retrieval (tool catalog -> tools bound per turn) · bench
    top      cli
"""

from .chat.model import ChatAttentionBuckets

__version__ = "0.1.0"
__all__ = ["ChatAttentionBuckets", "__version__"]
