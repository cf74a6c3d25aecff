"""Retrieval: a large tool catalog -> the tools bound per request (``tools``), and a RAG chain
with citations (``rag``). See docs/retrieval.md and docs/rag.md."""

from .rag import RAG_PROMPT, cited, format_documents, load_markdown_folder, rag_chain
from .tools import (
    MiniLMEmbeddings,
    ToolRetrievalMiddleware,
    ToolRetriever,
    query_of,
    reorder,
    split_request,
    token_counter,
    tool_document,
    tool_spec,
)

__all__ = [
    "RAG_PROMPT", "MiniLMEmbeddings", "ToolRetrievalMiddleware", "ToolRetriever", "cited",
    "format_documents", "load_markdown_folder", "query_of", "rag_chain", "reorder", "split_request",
    "token_counter", "tool_document", "tool_spec",
]
