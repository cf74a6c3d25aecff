"""Tool-call formats: how a model writes a call, one module per family.

``hermes`` is the package's own format (``<tool_call>{...}</tool_call>``), used where a chat
template renders no tools (the embedded model). See docs/architecture.md.
"""
