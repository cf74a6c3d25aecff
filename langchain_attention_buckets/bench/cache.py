"""Resumable results: one JSON line per finished (configuration, sample), keyed by a hash.

A run appends each result as soon as it is computed; a later run with the same
settings reads the file and skips every key already there, so an interrupted
run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def record_key(settings: dict[str, Any], sample_uid: str, config: dict[str, Any]) -> str:
    """Hash of what decides one result: run settings, the sample's content, the config."""
    blob = json.dumps({"settings": settings, "sample": sample_uid, "config": config}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ResultCache:
    """An append-only JSONL file of records, each with a "key" field."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        text = self.path.read_text()
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interrupted write
                continue
            if isinstance(rec, dict) and "key" in rec:
                self.records[rec["key"]] = rec
        if text and not text.endswith("\n"):  # so the next record starts on its own line
            with self.path.open("a") as f:
                f.write("\n")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self.records[key]

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
        self.records[record["key"]] = record
