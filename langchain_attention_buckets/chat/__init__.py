"""The LangChain edge: ``ChatAttentionBuckets`` and what one call is built from.

``settings`` (the one table of settings) -> ``options`` (one call's options) -> ``call`` (one call:
prompt ids, grammar, tool decision, request, parser, guard; its chunks) -> ``model`` (the chat
model: fields, ``bind_tools``, ``with_structured_output``, streaming). ``configs`` holds the named
configurations that ``preset=`` and the benchmarks share. See docs/architecture.md.
"""
