"""Tool catalogs from MCP servers: the example servers as real processes, ``langchain-mcp-adapters``, the
retrieval index that follows a changed catalog, and schemas as MCP servers write them.

The calls are made by the grammar, not the model's skill, so a tiny random Llama with the embedded
tokenizer runs them (fast tier). Each server start costs ~1-3 s (a Python process importing the catalog):
a stdio server is spawned by the adapter for each listing and each call, an HTTP server once per test.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
from enum import Enum
from pathlib import Path

import jsonschema
import pytest
from conftest import CLOSING, TINY_BASES
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.retrieval.mcp import McpSessions, load_mcp_catalog, name_tools
from langchain_attention_buckets.retrieval.tools import ToolRetriever, tool_spec
from langchain_attention_buckets.text.render import tools_system_text

pytest.importorskip("langchain_mcp_adapters")

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ROOT / "examples" / "mcp" / "servers.py"


def _demo():
    spec = importlib.util.spec_from_file_location("agent_demo_for_mcp", ROOT / "examples" / "agent_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HashEmbeddings(Embeddings):
    """Hashed bag of words (64 dims): deterministic, fast, similar when the words are; counts what it embeds."""

    def __init__(self):
        self.embedded: list[str] = []

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * 64
        for w in re.findall(r"[a-z]+", text.lower()):
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
        return v

    def embed_documents(self, texts):
        self.embedded += list(texts)
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


@pytest.fixture(scope="module")
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=80, logit_bias=CLOSING)


def _stdio(server: str, *extra: str) -> dict:
    return {"transport": "stdio", "command": sys.executable, "args": [str(SERVERS), server, *extra]}


def _forcing(first_choice: str = "any"):
    from langchain.agents.middleware import AgentMiddleware

    class ForceOneCall(AgentMiddleware):
        def wrap_model_call(self, request, handler):
            done = any(isinstance(m, ToolMessage) for m in request.messages)
            return handler(request.override(tool_choice="none" if done else first_choice))

    return ForceOneCall()


# ---- real processes ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_stdio_server_with_dotted_names_forced_call_and_retrieval(llm, tmp_path):
    tools = load_mcp_catalog({"shop": _stdio("shop", "--dotted")})
    names = [t.name for t in tools]
    assert len(tools) == 26 and "database.get_order" in names and "calendar.add_calendar_event" in names
    assert all(t.metadata["mcp_server"] == "shop" for t in tools)

    retriever = ToolRetriever(tools, embeddings=HashEmbeddings(), k=3, cache_path=tmp_path)
    assert retriever.select_names("look up the order by its order id")[0] == "database.get_order"

    order = tools[names.index("database.get_order")]
    msg = llm.bind_tools([order], tool_choice="database.get_order").invoke("What is the status of order A1017?")
    assert [c["name"] for c in msg.tool_calls] == ["database.get_order"], msg
    jsonschema.validate(msg.tool_calls[0]["args"], tool_spec(order)["function"]["parameters"])
    result = order.invoke(msg.tool_calls[0])  # runs on a server the adapter spawns for the call
    assert isinstance(result, ToolMessage) and result.tool_call_id == msg.tool_calls[0]["id"]
    # the server's answer (an error result for a random id) is what the in-process tool answers
    sys.path.insert(0, str(SERVERS.parent))
    from servers import server_tools

    local = next(t for t in server_tools("shop", dotted=True) if t.name == "database.get_order").invoke(msg.tool_calls[0])
    assert (result.text, result.status) == (local.content, local.status)


@pytest.mark.enable_socket
@pytest.mark.timeout(180)
def test_http_server_agent_turn_then_the_server_dies(llm):
    from langchain.agents import create_agent

    demo = _demo()
    with demo.example_servers(["utilities"]) as connections:
        tools = load_mcp_catalog(connections)
        assert len(tools) == 112 and all(t.metadata["mcp_server"] == "utilities" for t in tools)
        retriever = ToolRetriever(tools, embeddings=HashEmbeddings(), k=3)
        agent = create_agent(llm, tools, middleware=[retriever.middleware(), _forcing()])
        question = "Count the words in the text 'the quick brown fox'."
        state = agent.invoke({"messages": [HumanMessage(question)]})
        calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
        results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
        assert len(calls) == 1 and calls[0]["name"] in retriever.select_names(question)
        assert results[0].tool_call_id == calls[0]["id"] and "did not answer" not in results[0].text
        assert isinstance(state["messages"][-1], AIMessage) and not state["messages"][-1].tool_calls

        # a tool raising on the server: an error result with the text an in-process call shows
        days = next(t for t in tools if t.name == "days_between_dates")
        bad = {"type": "tool_call", "name": "days_between_dates", "args": {"start_date": "someday", "end_date": "2024-01-01"},
               "id": "call_bad"}
        out = days.invoke(bad)
        assert (out.status, out.text) == ("error", "invalid date 'someday': use ISO format YYYY-MM-DD, e.g. '2024-03-14'")

    # the server was stopped when the block ended (terminated, as a crash would): the next call
    # comes back to the agent as an error result, and the agent answers
    state = agent.invoke({"messages": [HumanMessage(question)]})
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(results) == 1 and results[0].status == "error", state["messages"]
    assert "MCP server 'utilities' did not answer" in results[0].text
    assert isinstance(state["messages"][-1], AIMessage) and not state["messages"][-1].tool_calls


def _children() -> list[int]:
    """Process ids whose parent is this process (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the server process through /proc")
@pytest.mark.timeout(120)
def test_sessions_keep_a_stdio_server_and_its_state_and_a_killed_one_gives_an_error_result():
    def call(tool, args, i):
        return tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": f"call_{i}"})

    before = set(_children())
    with McpSessions({"shop": _stdio("shop")}) as tools:
        by_name = {t.name: t for t in tools}
        added = call(by_name["add_calendar_event"], {"title": "Standup", "date": "2024-05-02", "start_time": "09:30"}, 1)
        assert added.status == "success", added
        listed = call(by_name["list_calendar_events"], {"date": "2024-05-02"}, 2)  # the same server process
        assert [e["title"] for e in json.loads(listed.text)["events"]] == ["Standup"]
        assert asyncio.run(by_name["get_order"].ainvoke({"order_id": "A1001"}))  # from async code too

        (server,) = set(_children()) - before
        os.kill(server, signal.SIGKILL)
        for _ in range(100):  # the session's reader sees the pipe close
            if server not in _children():
                break
            time.sleep(0.05)
        out = call(by_name["get_order"], {"order_id": "A1001"}, 3)
        assert out.status == "error" and "MCP server 'shop' did not answer the call of 'get_order'" in out.text


def test_a_server_that_cannot_start_is_an_error_when_listing():
    with pytest.raises(ConnectionError, match="MCP server 'broken' could not list its tools"):
        load_mcp_catalog({"broken": {"transport": "stdio", "command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}})


# ---- names across servers -----------------------------------------------------------------------


def _tool(name: str, description: str = "", fail: Exception | None = None) -> StructuredTool:
    async def call(**kwargs):
        if fail is not None:
            raise fail
        return [{"type": "text", "text": f"{name} ok"}], None

    return StructuredTool(
        name=name, description=description or f"{name} tool", args_schema={"type": "object", "properties": {}},
        coroutine=call, response_format="content_and_artifact",
    )


def test_same_name_on_two_servers_is_prefixed_or_refused():
    per_server = {"shop": [_tool("search"), _tool("get_order")], "web": [_tool("search"), _tool("fetch")]}
    names = [t.name for t in name_tools(per_server, "prefix")]
    assert names == ["shop.search", "get_order", "web.search", "fetch"]
    with pytest.raises(ValueError, match="'search' is served by both 'shop' and 'web'"):
        name_tools(per_server, "error")
    with pytest.raises(ValueError, match="collisions='merge' is not allowed"):
        load_mcp_catalog({"x": {}}, collisions="merge")


def test_retriever_refuses_one_name_from_two_servers_naming_both():
    a, b = (name_tools({s: [_tool("search")]})[0] for s in ("shop", "web"))
    with pytest.raises(ValueError, match="'search' comes from both MCP servers 'shop' and 'web'"):
        ToolRetriever([a, b], embeddings=HashEmbeddings())


def test_guarded_tools_run_sync_and_turn_a_dead_transport_into_an_error_result():
    ok, dead = name_tools({"s": [_tool("ok"), _tool("dead", fail=ConnectionError("connection refused"))]})
    assert ok.invoke({"type": "tool_call", "name": "ok", "args": {}, "id": "1"}).text == "ok ok"
    out = dead.invoke({"type": "tool_call", "name": "dead", "args": {}, "id": "2"})
    assert out.status == "error" and "MCP server 's' did not answer the call of 'dead': ConnectionError" in out.text
    out = asyncio.run(dead.ainvoke({"type": "tool_call", "name": "dead", "args": {}, "id": "3"}))
    assert out.status == "error"
    raising = name_tools({"s": [_tool("bad", fail=ToolException("plain tool error"))]})[0]
    with pytest.raises(ToolException):  # not an MCP error result nor a transport failure: not swallowed
        raising.invoke({"type": "tool_call", "name": "bad", "args": {}, "id": "4"})


# ---- the index follows the catalog ----------------------------------------------------------------


def test_changed_catalog_re_embeds_only_the_changed_tools(tmp_path):
    sys.path.insert(0, str(SERVERS.parent))
    from servers import server_tools

    shop, utilities = server_tools("shop"), server_tools("utilities")
    emb = HashEmbeddings()
    r = ToolRetriever(shop, embeddings=emb, cache_path=tmp_path)
    assert (r.stats.embedded, r.stats.cached, r.stats.removed) == (26, 0, 0) and len(emb.embedded) == 26

    # a server added: only its tools are embedded
    assert r.update(shop + utilities) == type(r.stats)(embedded=112, cached=26, removed=0)
    # a server restarted with one tool changed and one gone
    changed = [t.model_copy(update={"description": t.description + " Now in every currency."}) if t.name == "get_order"
               else t for t in shop if t.name != "get_customer"]
    assert r.update(changed + utilities) == type(r.stats)(embedded=1, cached=136, removed=1)
    assert "get_customer" not in r.ranked("customer", 200) and len(r.ranked("order", 500)) == 137
    assert len(emb.embedded) == 26 + 112 + 1 and "Now in every currency" in emb.embedded[-1]
    # a server removed, then everything again: nothing new to embed
    assert r.update(utilities).removed == 25
    assert r.update(shop + utilities).embedded == 0

    # the next run reads the cache folder: nothing embedded
    again = HashEmbeddings()
    r2 = ToolRetriever(changed + utilities, embeddings=again, cache_path=tmp_path)
    assert r2.stats.embedded == 0 and again.embedded == []
    assert [p.name for p in tmp_path.iterdir()] == ["tool-embeddings-HashEmbeddings.json"]


# ---- schemas as MCP servers write them -------------------------------------------------------------


class Priority(str, Enum):
    low = "low"
    high = "high"


class Line(BaseModel):
    sku: str
    quantity: int
    notes: str | None = None


def _mcp_schema_tool():
    """An MCP tool as FastMCP lists it: $defs/$ref, anyOf with null, enums, additionalProperties,
    a nested array of objects, no descriptions; converted as langchain-mcp-adapters does."""
    from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("orders")

    @server.tool(name="orders.create")
    def create(customer: str, lines: list[Line], priority: Priority = Priority.low, tags: dict[str, int] | None = None) -> str:
        return "ok"

    (listed,) = asyncio.run(server.list_tools())
    connection = {"transport": "stdio", "command": sys.executable, "args": ["-c", "pass"]}
    return listed.inputSchema, convert_mcp_tool_to_langchain_tool(None, listed, connection=connection)


def test_mcp_schemas_bind_prompt_grammar_and_validate(llm):
    schema, tool = _mcp_schema_tool()
    assert "$defs" in schema and "additionalProperties" in json.dumps(schema)
    spec = tool_spec(tool)
    assert spec["function"]["name"] == "orders.create"
    prompt = tools_system_text([spec])  # LangChain inlines $defs: the model reads each schema where it is used
    assert '"name": "orders.create"' in prompt and '"sku"' in prompt and '"enum": ["low", "high"]' in prompt
    assert "$ref" not in prompt
    bound = llm.bind_tools([tool], tool_choice="orders.create")
    for question in ("Order two lamps for Ada.", "Create an urgent order of 3 chairs for Bo."):
        msg = bound.invoke(question)
        assert [c["name"] for c in msg.tool_calls] == ["orders.create"] and not msg.invalid_tool_calls, msg
        jsonschema.validate(msg.tool_calls[0]["args"], schema)


def test_a_construct_the_grammar_cannot_enforce_is_refused_at_bind_time_naming_tool_and_keyword(llm):
    bad = {"type": "function", "function": {"name": "files.write", "parameters": {
        "type": "object", "properties": {"path": {"type": "string", "not": {"const": "/"}}}}}}
    with pytest.raises(ValueError, match=r"tool 'files.write'.*'not'"):
        llm.bind_tools([bad])


def test_example_server_schemas_equal_the_in_process_catalog():
    sys.path.insert(0, str(SERVERS.parent))
    from servers import build_server, server_tools

    listed = asyncio.run(build_server("shop").list_tools())
    in_process = {t.name: tool_spec(t)["function"] for t in server_tools("shop")}
    assert {t.name: {"name": t.name, "description": t.description, "parameters": t.inputSchema} for t in listed} == in_process


def test_arguments_written_as_text_are_coerced_through_any_of_with_null():
    from langchain_attention_buckets.text.parse import coerce

    schema = {"type": "object", "properties": {
        "count": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "label": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "lines": {"type": "array", "items": {"anyOf": [{"type": "object", "properties": {"n": {"type": "integer"}}},
                                                        {"type": "null"}]}},
    }}
    out = coerce({"count": "3", "label": "7", "lines": [{"n": "2"}, None]}, schema)
    assert out == {"count": 3, "label": "7", "lines": [{"n": 2}, None]}
    jsonschema.validate(out, schema)


def test_dotted_names_read_as_words_in_the_embedded_documentation():
    from langchain_attention_buckets.retrieval.tools import tool_document

    spec = {"type": "function", "function": {"name": "orders.create-draft_v2", "description": "Start an order."}}
    assert tool_document(spec).splitlines()[0] == "orders create draft v2"


@pytest.mark.embedded
@pytest.mark.enable_socket
@pytest.mark.timeout(600)  # a bound for hangs, not a speed test
def test_the_embedded_agent_over_mcp_equals_the_in_process_agent(tmp_path):
    # the README's main job, first question, one base, deterministic: the catalog served by the
    # example MCP servers (subprocesses, streamable HTTP on 127.0.0.1) gives the same calls,
    # arguments, results and answer word for word as the catalog in process
    demo = _demo()
    args = ["--fast", "--configs", "one", "--deterministic"]
    local, served = tmp_path / "in-process.json", tmp_path / "mcp.json"
    demo.main([*args, "--json", str(local)])
    demo.main([*args, "--mcp", "--json", str(served)])
    a, b = (json.loads(p.read_text()) for p in (local, served))
    assert a["source"] == "in process" and b["source"] == "from MCP servers shop, utilities"

    def runs(record):
        return [{k: r[k] for k in ("question", "config", "calls", "answer", "ended")} for r in record["runs"]]

    assert runs(b) == runs(a)
    assert len(a["runs"]) == 1 and a["runs"][0]["calls"] and a["runs"][0]["ended"]  # the model called a tool, the loop ended
