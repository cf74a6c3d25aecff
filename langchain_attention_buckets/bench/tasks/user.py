"""The user's own data as an accuracy task: a JSONL file, one item per line, one kind per file.

Tool selection (``"kind": "tool"``): a request, the tools in the context, the tool that serves it::

    {"kind": "tool", "request": "How much is 150 EUR in JPY?",
     "tools": [{"type": "function", "function": {"name": "convert_currency", "description": "...",
                "parameters": {...}}}, {"name": "get_weather", "description": "..."}],
     "answer": "convert_currency", "arguments": {"amount": 150}, "system": "...", "split": "dev", "id": "q1"}

Context question answering (``"kind": "qa"``): documents (or one context), a question, the accepted answers::

    {"kind": "qa", "question": "Into which lake does the river Tarn flow?",
     "documents": ["The Tarn flows into Lake Ober.", "..."], "gold": 0, "answers": ["Lake Ober", "Ober"]}

``tools`` entries are OpenAI function schemas or short ``{"name", "description", "parameters"?}``
objects; ``arguments`` (optional) are the values the request states (scored by ``tool+args``);
``system`` (optional) replaces the built-in system prompt. ``documents`` (with ``gold``, the index
of the document holding the answer, default 0) or ``context`` (one text, so one position); a reply
is correct when it contains one of ``answers`` (case-insensitively). ``split`` ("dev" or "test",
optional: as in ``decisions.load_rows``, a hash of the request/question decides); ``id`` optional.

As in the built-in tasks, the essential item (the ``answer`` tool, the ``gold`` document) is moved
to each requested position and the others keep their order. Every row uses ``n_items`` items: the
essential one and the first ``n_items - 1`` others (default: the smallest row's count).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, Union

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ...text.tool_choice import TOOL_NAME
from .base import Item, Sample, check_settings, place, reply_text
from .qa import QASample
from .tools import SYSTEM, ToolSample

SPLITS = ("dev", "test")
_NAME = TOOL_NAME.pattern  # a tool name as bind_tools accepts it (MCP's rule)
_EMPTY_PARAMETERS = {"type": "object", "properties": {}}

ALLOWED = {
    "kind": '"tool" or "qa" (one kind per file)',
    "request": "a non-empty string",
    "tools": 'a non-empty list of OpenAI function schemas ({"type": "function", "function": {...}}) '
             'or {"name", "description", "parameters"} objects',
    "name": "1-128 letters, digits, '_', '-' or '.'",
    "description": "a string",
    "parameters": "a JSON schema object",
    "answer": "the name of one of the row's tools",
    "arguments": "an object of argument values the request states",
    "system": "a string",
    "question": "a non-empty string",
    "documents": "a non-empty list of strings",
    "context": "a string (instead of documents)",
    "gold": "the index of the document holding the answer (0-based)",
    "answers": "a non-empty list of accepted answer strings (or one string)",
    "split": '"dev" or "test" (or leave it out: a hash of the request or question decides)',
    "id": "a string or integer",
}


class ToolSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, Field(pattern=_NAME)]
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_EMPTY_PARAMETERS))
    strict: bool | None = None


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    split: Literal["dev", "test"] | None = None
    id: str | int | None = None


class ToolRow(_Row):
    kind: Literal["tool"]
    request: Annotated[str, Field(min_length=1)]
    tools: Annotated[list[ToolSchema], Field(min_length=1)]
    answer: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    system: str | None = None

    @field_validator("tools", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        """OpenAI's {"type": "function", "function": {...}} becomes its inner object."""
        if not isinstance(value, list):
            return value
        return [t["function"] if isinstance(t, dict) and t.get("type") == "function" and "function" in t
                else t for t in value]

    @model_validator(mode="after")
    def _check_answer(self) -> ToolRow:
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")
        if self.answer not in names:
            raise ValueError(f"answer {self.answer!r} is not among the tools: {names}")
        return self

    @property
    def text(self) -> str:
        return self.request

    @property
    def n(self) -> int:
        return len(self.tools)


class QARow(_Row):
    kind: Literal["qa"]
    question: Annotated[str, Field(min_length=1)]
    documents: Annotated[list[str], Field(min_length=1)] | None = None
    context: str | None = None
    gold: Annotated[int, Field(ge=0)] = 0
    answers: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]

    @field_validator("answers", mode="before")
    @classmethod
    def _one_answer(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_documents(self) -> QARow:
        if (self.documents is None) == (self.context is None):
            raise ValueError("give either 'documents' (a list) or 'context' (one text), not both or neither")
        if self.gold >= self.n:
            raise ValueError(f"gold={self.gold} but there are {self.n} documents (allowed 0..{self.n - 1})")
        return self

    @property
    def docs(self) -> list[str]:
        return self.documents if self.documents is not None else [self.context]

    @property
    def text(self) -> str:
        return self.question

    @property
    def n(self) -> int:
        return len(self.docs)


_ROW = TypeAdapter(Annotated[Union[ToolRow, QARow], Field(discriminator="kind")])
KINDS = ("tool", "qa")


def load_user_file(path: str | Path) -> list[ToolRow | QARow]:
    """The rows of a user JSONL file, each checked, with ``split`` filled in.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Naming the file, the line, the field and what is allowed (bad JSON, a missing
            or mistyped field, an unknown kind, two kinds in one file, an empty file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a JSONL file of 'tool' or 'qa' items)")
    rows: list[ToolRow | QARow] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = _parse_line(path, n, line)
        if rows and row.kind != rows[0].kind:
            raise ValueError(f"{path}:{n}: field 'kind': {row.kind!r} after {rows[0].kind!r} items on earlier "
                             "lines; one file holds one kind (allowed: " + ALLOWED["kind"] + ")")
        if row.split is None:
            row.split = hash_split(row.text)
        if row.id is None:
            row.id = f"line-{n}"
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no items (the file is empty); each line is one JSON object with "
                         f"\"kind\": {ALLOWED['kind']} (docs/bench.md, 'Your own data')")
    return rows


def hash_split(text: str) -> str:
    """"dev" or "test" from a hash of the request or question (``decisions.load_rows``' rule)."""
    return "dev" if int(hashlib.sha256(str(text).encode()).hexdigest(), 16) % 2 == 0 else "test"


def _parse_line(path: Path, n: int, line: str) -> ToolRow | QARow:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno}); "
                         "each line must be one JSON object") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}:{n}: a JSON {type(data).__name__}, not an object; each line must be "
                         "one JSON object with a \"kind\" field")
    if "kind" not in data:
        raise ValueError(f"{path}:{n}: field 'kind' is missing; allowed: {ALLOWED['kind']}")
    if data["kind"] not in KINDS:
        raise ValueError(f"{path}:{n}: field 'kind' is {data['kind']!r}; allowed: {ALLOWED['kind']}")
    try:
        return _ROW.validate_python(data)
    except ValidationError as e:
        raise ValueError(f"{path}:{n}: {_describe(e.errors()[0])}") from None


def _describe(err: dict) -> str:
    """'field X: what is wrong; allowed: ...' from one pydantic error."""
    loc = [str(x) for x in err["loc"][1:]]  # [0] is the kind (the union's tag)
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields
        return msg
    field = ".".join(loc)
    name = next((x for x in reversed(loc) if x in ALLOWED), None)
    allowed = f"; allowed: {ALLOWED[name]}" if name else ""
    if err["type"] == "missing":
        return f"field {field!r} is missing{allowed}"
    if err["type"] == "extra_forbidden":
        return f"field {field!r} is not a known field; allowed fields: {', '.join(sorted(ALLOWED))}"
    return f"field {field!r}: {msg} (got {err.get('input')!r:.80}){allowed}"


# ---- samples ------------------------------------------------------------------------


@dataclass(frozen=True)
class UserToolSample(ToolSample):
    system: str = SYSTEM

    def messages(self, items: Sequence[Item] | None = None) -> list[BaseMessage]:
        return [SystemMessage(self.system), HumanMessage(self.question)]


@dataclass(frozen=True)
class UserQASample(QASample):
    answers: tuple[str, ...] = ()

    def score(self, message: AIMessage) -> dict[str, bool]:
        text = reply_text(message).lower()
        return {"correct": any(a.lower() in text for a in self.answers)}


def min_items(rows: Sequence[ToolRow | QARow]) -> int:
    return min(r.n for r in rows)


def make_samples(
    rows: Sequence[ToolRow | QARow], source: str, *, n_items: int, positions: Sequence[int],
    samples_per_position: int, seed: int = 0, split: str | None = None,
) -> list[Sample]:
    """Rows x positions: the first ``samples_per_position`` rows of ``split`` (None: all rows), each
    with its essential item and first ``n_items - 1`` others, the essential item at each position.
    ``seed`` is not used: the rows are the data."""
    check_settings(n_items, positions, samples_per_position)
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: 'dev', 'test' or None (all rows)")
    chosen = [r for r in rows if split is None or r.split == split][:samples_per_position]
    if not chosen:
        raise ValueError(f"{source}: no rows in split {split!r}; allowed: a split that has rows, or all rows")
    short = next((r for r in chosen if r.n < n_items), None)
    if short is not None:
        raise ValueError(f"{source}: row {short.id!r} has {short.n} items, fewer than n_items={n_items}; "
                         f"allowed: at most {min_items(chosen)} items")
    samples: list[Sample] = []
    for q, row in enumerate(chosen):
        gold, others = _items(row)
        for pos in positions:
            samples.append(_sample(row, q, pos, place(gold, others[: n_items - 1], pos)))
    return samples


def _items(row: ToolRow | QARow) -> tuple[Item, list[Item]]:
    """The essential item and the others in the row's order."""
    if isinstance(row, ToolRow):
        items = [Item(id=t.name, text=t.description, payload={"type": "function", "function": t.model_dump(exclude_none=True)})
                 for t in row.tools]
        j = next(i for i, t in enumerate(row.tools) if t.name == row.answer)
    else:
        items = [Item(id=f"document-{i}", text=d) for i, d in enumerate(row.docs)]
        j = row.gold
    return items[j], items[:j] + items[j + 1:]


def _sample(row: ToolRow | QARow, q: int, pos: int, items: tuple[Item, ...]) -> Sample:
    if isinstance(row, ToolRow):
        return UserToolSample("tool", q, pos, items, row.request, row.answer, dict(row.arguments),
                              system=row.system or SYSTEM)
    return UserQASample("qa", q, pos, items, row.question, " | ".join(row.answers), answers=tuple(row.answers))
