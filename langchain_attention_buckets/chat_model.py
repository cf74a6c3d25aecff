"""The path LangChain's serialization records for ``ChatAttentionBuckets``
(``["langchain_attention_buckets", "chat_model", "ChatAttentionBuckets"]``), kept so that serialized
objects load; the class lives in ``chat/model.py``."""

from .chat.model import ChatAttentionBuckets

__all__ = ["ChatAttentionBuckets"]
