"""The formats by name, and detection from a chat template's text (as llama.cpp does)."""

from __future__ import annotations

from .base import REASONING_FORMATS, Format
from .deepseek_r1 import DEEPSEEK_R1
from .granite import GRANITE, Granite
from .hermes import HERMES
from .llama3 import LLAMA3
from .mistral import MISTRAL, Mistral
from .qwen3 import QWEN3

FORMATS: dict[str, Format] = {f.name: f for f in (HERMES, QWEN3, LLAMA3, MISTRAL, DEEPSEEK_R1, GRANITE)}

# Detection order: the most specific markers first (a DeepSeek template also mentions <think>,
# a Qwen3 one <tool_call>, a Granite one <think>).
_DETECT = (
    ("deepseek-r1", ("<｜tool▁calls▁begin｜>",)),
    ("granite", ("<|tool_call|>",)),
    ("mistral", ("[TOOL_CALLS]",)),
    ("llama3", ("<|python_tag|>", "ipython")),
    ("qwen3", ("<tool_call>", "<think>")),
    ("hermes", ("<tool_call>",)),
)


def names() -> list[str]:
    """The formats' names."""
    return list(FORMATS)


def reasoning_names() -> list[str]:
    """The names ``reasoning_format=`` accepts: "none", "think", or a format's name."""
    return [*REASONING_FORMATS, *FORMATS]


def get(name: str | Format | None, reasoning_format: str | None = None) -> Format:
    """The format called ``name`` (a ``Format`` passes through; None: "hermes"), reading
    ``reasoning_format``'s reasoning where given ("none", "think", "magistral", or a format's name).

    Raises:
        ValueError: an unknown name, naming the known ones.
    """
    if name is None:
        name = "hermes"
    if isinstance(name, Format):
        fmt = name
    elif name in FORMATS:
        fmt = FORMATS[name]
    else:
        raise ValueError(f"tool format {name!r} is unknown; known formats: {', '.join(FORMATS)}")
    if reasoning_format is not None and reasoning_format not in REASONING_FORMATS and reasoning_format not in FORMATS:
        raise ValueError(
            f"reasoning format {reasoning_format!r} is unknown; known: {', '.join(reasoning_names())}"
        )
    return fmt.with_reasoning(reasoning_format)


def detect(chat_template: str | None) -> str:
    """The format a chat template's text asks for (its markers), "hermes" where it shows none.

    "hermes" is then the package's own fallback format (a template that ignores ``tools``).
    """
    source = chat_template or ""
    if "<think>" in source and "<tool_call>" not in source and "[TOOL_CALLS]" not in source:
        if "<｜tool▁calls▁begin｜>" in source or "<｜Assistant｜>" in source:
            return "deepseek-r1"
    for name, markers in _DETECT:
        if name == "qwen3":
            if all(m in source for m in markers):
                return name
        elif any(m in source for m in markers):
            return name
    return "hermes"


def for_template(chat_template: str | None) -> Format:
    """The detected format, set up for this template (Mistral: the v11 call style where the
    template writes ``[ARGS]`` or ``[CALL_ID]``, and ``[THINK]`` reasoning where it knows it; any
    other family reads ``<think>`` reasoning where its template writes ``</think>``, except Granite:
    its template names ``<think></think>`` for a thinking mode whose blocks are not read)."""
    source = chat_template or ""
    fmt = get(detect(source))
    if isinstance(fmt, Mistral):
        fmt = Mistral("v11" if "[ARGS]" in source or "[CALL_ID]" in source else "v3")
        if "[THINK]" in source:  # Magistral
            fmt = fmt.with_reasoning("magistral")
    elif fmt.reasoning is None and "</think>" in source and not isinstance(fmt, Granite):  # a reasoning fine-tune
        fmt = fmt.with_reasoning("think")
    return fmt
