"""The text side: LangChain messages to a prompt, generated text back to a message.

``messages`` (messages -> chat dicts) -> ``render`` (chat dicts -> prompt text) ... the engine ...
``parse`` (text -> text, reasoning and tool calls) -> ``guard`` (where a free answer ends). The call
syntax itself (markers, how a call is written) lives in ``formats``. See docs/architecture.md.
"""
