"""The tool catalog as Model Context Protocol servers (the ``mcp`` SDK's FastMCP), split in two.

- ``shop``: the shop database, inventory, currency and calendar tools;
- ``utilities``: math, units, dates, geography, text and the offline fake APIs.

Each tool is served with the documentation and JSON schema the in-process catalog gives
LangChain (``convert_to_openai_tool``), and its result is the text an in-process call puts
in its ``ToolMessage``, so an agent reads the same words either way. A tool that raises
(``ToolException``: a bad id, an unknown time zone) answers with an MCP error result
(``isError``) carrying the in-process error text (FastMCP's own wrapping would add "Error
executing tool NAME: "), which ``langchain-mcp-adapters`` hands the model as an error ``ToolMessage``.
With ``--dotted`` a server names its tools ``<area>.<tool>`` (``database.get_order``), as MCP
allows and as many real servers do.

    python examples/mcp/servers.py shop                               # stdio (what MCP clients spawn)
    python examples/mcp/servers.py utilities --transport http --port 8765   # http://127.0.0.1:8765/mcp
    python examples/mcp/servers.py shop --dotted
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
EXAMPLES = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(EXAMPLES))

from langchain_core.tools import BaseTool  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from tool_catalog import (  # noqa: E402
    calendar_tools,
    currency,
    database,
    dates,
    fake_apis,
    geo,
    inventory,
    math_tools,
    text,
    tool_functions,
    units,
)
from tool_catalog._common import build_tool  # noqa: E402

SERVERS = {
    "shop": (database, inventory, currency, calendar_tools),
    "utilities": (math_tools, units, dates, geo, text, fake_apis),
}
HOST = "127.0.0.1"
PATH = "/mcp"


def area(module) -> str:
    """The prefix of a module's tools under --dotted: ``calendar_tools`` -> ``calendar``."""
    return module.__name__.rsplit(".", 1)[-1].removesuffix("_tools")


def server_tools(server: str, dotted: bool = False) -> list[BaseTool]:
    """The catalog's LangChain tools that ``server`` serves, renamed ``<area>.<name>`` if ``dotted``."""
    if server not in SERVERS:
        raise ValueError(f"server={server!r} is not allowed; use one of {', '.join(SERVERS)}")
    tools = []
    for module in SERVERS[server]:
        for fn in tool_functions(module):
            t = build_tool(fn)  # a ToolException becomes the error text an in-process call shows
            if dotted:
                t.name = f"{area(module)}.{t.name}"
            tools.append(t)
    return tools


def mcp_tool(tool: BaseTool):
    """A FastMCP tool serving ``tool`` with the schema and result text an in-process call has."""
    from mcp.server.fastmcp.tools import Tool
    from mcp.server.fastmcp.utilities.func_metadata import ArgModelBase, FuncMetadata
    from mcp.types import CallToolResult, TextContent
    from pydantic import create_model

    spec = convert_to_openai_tool(tool)["function"]
    fields = {k: (f.annotation, f) for k, f in tool.tool_call_schema.model_fields.items()}
    args_model = create_model(f"{tool.name.replace('.', '_')}Arguments", **fields, __base__=ArgModelBase)

    async def call(**arguments: Any) -> Any:
        message = await tool.ainvoke({"type": "tool_call", "name": tool.name, "args": arguments, "id": "mcp"})
        if message.status == "error":  # the tool raised: an MCP error result with the in-process text
            return CallToolResult(content=[TextContent(type="text", text=message.content)], isError=True)
        return message.content

    return Tool(
        fn=call,
        name=tool.name,
        description=spec.get("description", ""),
        parameters=spec["parameters"],
        fn_metadata=FuncMetadata(arg_model=args_model),
        is_async=True,
    )


def build_server(server: str, *, dotted: bool = False, port: int = 8000):
    """A FastMCP server named ``server`` with its share of the catalog (HTTP on 127.0.0.1:``port``)."""
    from mcp.server.fastmcp import FastMCP

    tools = [mcp_tool(t) for t in server_tools(server, dotted)]
    return FastMCP(server, tools=tools, host=HOST, port=port, streamable_http_path=PATH, log_level="WARNING")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1 (default 8000)")
    parser.add_argument("--dotted", action="store_true", help="name tools <area>.<tool>")
    args = parser.parse_args(argv)
    mcp = build_server(args.server, dotted=args.dotted, port=args.port)
    mcp.run(transport="stdio" if args.transport == "stdio" else "streamable-http")


if __name__ == "__main__":
    main()
