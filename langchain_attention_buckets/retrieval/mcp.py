"""Tool catalogs from Model Context Protocol servers, through ``langchain-mcp-adapters``.

``load_mcp_catalog`` (``aload_mcp_catalog`` from async code) takes the servers in the shape
``MultiServerMCPClient`` takes (``{"shop": {"transport": "stdio", "command": ..., "args": [...]},
"web": {"transport": "http", "url": "http://127.0.0.1:8000/mcp"}}``) or a client, lists
every server's tools, and returns LangChain tools ready for ``ToolRetriever``,
``bind_tools`` and ``create_agent``:

- **names**: a name served by two servers is prefixed with its server (``shop.search``,
  ``web.search``; ``collisions="prefix"``, the default) or refused with an error naming
  both servers (``collisions="error"``); names are never silently merged;
- **errors**: a tool that fails on its server (an MCP error result) and a server that cannot
  be reached (it died, or never started) both come back to the model as an error
  ``ToolMessage`` (``status="error"``) instead of ending the agent's run;
- **sync and async**: the tools run from ``agent.invoke`` as well as ``agent.ainvoke``;
- ``tool.metadata["mcp_server"]`` names the server, ``tool.metadata["mcp_name"]`` the name
  the server knows the tool by.

``McpSessions`` keeps one session per server open for a ``with`` block instead of one per call
(a stdio server then starts once and keeps its state).

Needs the ``mcp`` extra (``pip install langchain-attention-buckets[mcp]``); imported lazily.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException

__all__ = ["Collisions", "McpSessions", "ServerUnreachable", "aload_mcp_catalog", "load_mcp_catalog", "name_tools"]

Collisions = Literal["prefix", "error"]
COLLISIONS = ("prefix", "error")
SEPARATOR = "."  # server + SEPARATOR + tool: MCP tool names allow '.', and so does bind_tools


class ServerUnreachable(ToolException):
    """A call whose server did not answer (it died, or never started); the model reads the message."""


async def aload_mcp_catalog(
    servers: Mapping[str, Mapping[str, Any]] | Any, *, collisions: Collisions = "prefix"
) -> list[BaseTool]:
    """The tools of every server, in server order then the server's own order.

    Args:
        servers: connections by server name, in ``MultiServerMCPClient``'s shape, or a
            ``MultiServerMCPClient``.
        collisions: "prefix" (default): a name served by several servers becomes
            ``<server>.<name>`` on each; "error": such a name raises ValueError.

    Raises:
        ValueError: a bad ``collisions``, or (with "error") a name served twice, naming the servers.
        ConnectionError: a server that could not list its tools (it did not start, or does not answer).
    """
    if collisions not in COLLISIONS:
        raise ValueError(f"collisions={collisions!r} is not allowed; use one of {', '.join(COLLISIONS)}")
    client = _client(servers)
    per_server = {}
    for name in client.connections:
        try:
            per_server[name] = await client.get_tools(server_name=name)
        except Exception as exc:  # no catalog without the server: say which one and why
            raise ConnectionError(f"MCP server {name!r} could not list its tools: {_reason(exc)}") from exc
    return name_tools(per_server, collisions)


def load_mcp_catalog(servers: Mapping[str, Mapping[str, Any]] | Any, *, collisions: Collisions = "prefix") -> list[BaseTool]:
    """``aload_mcp_catalog`` for code that is not async (runs it on a fresh event loop)."""
    return _run(aload_mcp_catalog(servers, collisions=collisions))


class McpSessions:
    """Sessions to every server, open for a ``with`` block: the catalog's calls reuse them.

    With plain connections (``load_mcp_catalog``) the adapter opens a session per call, which
    for a stdio server means a new server process per call, and a server's state (an open
    ticket, a calendar) does not outlive the call. Inside ``with McpSessions(servers) as tools``
    each server is started once and keeps its state; the sessions run on a private event loop
    thread, so the tools work from sync and async code alike; leaving the block closes them.

    Args:
        servers: as for ``load_mcp_catalog``.
        collisions: as for ``load_mcp_catalog``.
    """

    def __init__(self, servers: Mapping[str, Mapping[str, Any]] | Any, *, collisions: Collisions = "prefix"):
        if collisions not in COLLISIONS:
            raise ValueError(f"collisions={collisions!r} is not allowed; use one of {', '.join(COLLISIONS)}")
        self.client, self.collisions = _client(servers), collisions
        self.tools: list[BaseTool] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> list[BaseTool]:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-sessions", daemon=True)
        self._thread.start()
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._closing = asyncio.Event()
        self._task = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        try:
            self.tools = self._ready.result()
        except BaseException:
            self._stop()
            raise
        return self.tools

    def __exit__(self, *exc_info: Any) -> None:
        self._loop.call_soon_threadsafe(self._closing.set)
        try:
            self._task.result(timeout=30)
        except Exception:  # a server that died: its session closes with an error; nothing to keep
            pass
        finally:
            self._stop()

    async def _hold(self) -> None:
        """Open every session, hand the tools over, and close them all in this same task."""
        import contextlib

        from langchain_mcp_adapters.tools import load_mcp_tools

        try:
            async with contextlib.AsyncExitStack() as stack:
                per_server = {}
                for name in self.client.connections:
                    try:
                        session = await stack.enter_async_context(self.client.session(name))
                        per_server[name] = await load_mcp_tools(session, server_name=name)
                    except Exception as exc:
                        raise ConnectionError(f"MCP server {name!r} could not list its tools: {_reason(exc)}") from exc
                self._ready.set_result(name_tools(per_server, self.collisions, self._loop))
                await self._closing.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def name_tools(
    per_server: Mapping[str, list[BaseTool]], collisions: Collisions = "prefix", loop: asyncio.AbstractEventLoop | None = None
) -> list[BaseTool]:
    """Each server's tools, guarded and named: collisions prefixed by server or refused.

    ``loop``: the event loop the tools' sessions live on (``McpSessions``); calls are sent there.
    """
    servers_of: dict[str, list[str]] = {}
    for server, tools in per_server.items():
        for t in tools:
            servers_of.setdefault(t.name, []).append(server)
    shared = {name: s for name, s in servers_of.items() if len(s) > 1}
    if shared and collisions == "error":
        name, servers = next(iter(shared.items()))
        raise ValueError(
            f"tool name {name!r} is served by both {servers[0]!r} and {servers[1]!r}"
            + (f" (and {len(shared) - 1} more names are shared)" if len(shared) > 1 else "")
            + "; load with collisions='prefix' to call them '<server>.<name>', or rename one"
        )
    out = []
    for server, tools in per_server.items():
        for t in tools:
            name = f"{server}{SEPARATOR}{t.name}" if t.name in shared else t.name
            out.append(_guarded(t, server, name, loop))
    return out


def _client(servers: Any):
    if hasattr(servers, "get_tools") and hasattr(servers, "connections"):
        return servers
    if not isinstance(servers, Mapping) or not servers:
        raise ValueError(
            f"servers={servers!r} is not allowed; give connections by server name "
            "({'name': {'transport': 'stdio', 'command': ..., 'args': [...]}}) or a MultiServerMCPClient"
        )
    try:
        from langchain_mcp_adapters.client import MultiServerMCPClient
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("MCP servers need `pip install langchain-attention-buckets[mcp]`") from exc
    return MultiServerMCPClient({name: dict(conn) for name, conn in servers.items()})


def _guarded(tool: BaseTool, server: str, name: str, loop: asyncio.AbstractEventLoop | None = None) -> BaseTool:
    """``tool`` as ``name``: an unreachable server becomes an error result; callable sync too."""
    call = tool.coroutine
    handle = tool.handle_tool_error

    @functools.wraps(call)
    async def acall(*args: Any, **kwargs: Any) -> Any:
        try:
            if loop is None:
                return await call(*args, **kwargs)
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(*args, **kwargs), loop))
        except ToolException:
            raise
        except Exception as exc:  # the transport failed: the server died or never started
            raise ServerUnreachable(
                f"MCP server {server!r} did not answer the call of {name!r}: {_reason(exc)}"
            ) from exc

    @functools.wraps(call)
    def scall(*args: Any, **kwargs: Any) -> Any:
        return _run(acall(*args, **kwargs))

    def on_error(err: ToolException) -> Any:
        if isinstance(err, ServerUnreachable):
            return str(err)
        if callable(handle):
            return handle(err)
        raise err

    metadata = {**(tool.metadata or {}), "mcp_server": server, "mcp_name": tool.name}
    return StructuredTool(
        name=name,
        description=tool.description,
        args_schema=tool.args_schema,
        func=scall,
        coroutine=acall,
        response_format=tool.response_format,
        metadata=metadata,
        handle_tool_error=on_error,
    )


def _reason(exc: BaseException) -> str:
    """The innermost error of an exception group (anyio wraps transport errors in them)."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _run(coro) -> Any:
    """Run a coroutine to completion from sync code, also where an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
