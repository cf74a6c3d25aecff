"""Structured output: a pydantic instance, always valid (a grammar enforces the schema).

    python examples/structured_output_example.py
"""

from __future__ import annotations

import os
from typing import Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pydantic import BaseModel, Field

from langchain_attention_buckets import ChatAttentionBuckets


class Ticket(BaseModel):
    """A support ticket extracted from a customer message."""

    order_id: str = Field(description="The order id, like A1001")
    topic: Literal["shipping", "refund", "damage", "other"]
    urgent: bool


def main() -> Ticket:
    llm = ChatAttentionBuckets(max_tokens=60, repetition_penalty=1.2)
    extract = llm.with_structured_output(Ticket)  # method="json_schema"
    ticket = extract.invoke("My order A1004 arrived broken and I need it fixed before Friday!")
    print(repr(ticket))
    return ticket


if __name__ == "__main__":
    main()
