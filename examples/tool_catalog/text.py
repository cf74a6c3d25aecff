"""String and text utilities: real offline implementations (standard library only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from typing import Literal
from urllib.parse import quote, unquote

from langchain_core.tools import ToolException

from ._common import catalog_tool

_WORD = re.compile(r"\b[\w'-]+\b")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_URL = re.compile(r"\bhttps?://[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:\.\d+)?")


@catalog_tool
def count_words(text: str) -> dict:
    """Count the words in a piece of text.

    Args:
        text: The text to count words in.

    Returns:
        {"words": int}.

    Example:
        count_words("The quick brown fox") -> {"words": 4}
    """
    return {"words": len(_WORD.findall(text))}


@catalog_tool
def count_characters(text: str, include_spaces: bool = True) -> dict:
    """Count the characters in a text, with or without whitespace.

    Args:
        text: The text to measure.
        include_spaces: True counts spaces, tabs and newlines too; False counts only the other characters.

    Returns:
        {"characters": int}.
    """
    return {"characters": len(text) if include_spaces else len(re.sub(r"\s", "", text))}


@catalog_tool
def text_statistics(text: str, words_per_minute: int = 230) -> dict:
    """Summary statistics of a text: words, sentences, characters, average word length and reading time.

    Args:
        text: The text to analyse.
        words_per_minute: Reading speed used for the reading time. Defaults to 230.

    Returns:
        {"words", "sentences", "characters", "avg_word_length", "reading_minutes"}.
    """
    words = _WORD.findall(text)
    sentences = len(_SENTENCE_END.findall(text.strip())) or (1 if text.strip() else 0)
    avg = sum(len(w) for w in words) / len(words) if words else 0.0
    return {"words": len(words), "sentences": sentences, "characters": len(text),
            "avg_word_length": round(avg, 2), "reading_minutes": round(len(words) / max(words_per_minute, 1), 2)}


@catalog_tool
def reverse_text(text: str) -> dict:
    """Reverse a string character by character.

    Args:
        text: The text to reverse.

    Returns:
        {"reversed": str}.

    Example:
        reverse_text("stressed") -> {"reversed": "desserts"}
    """
    return {"reversed": text[::-1]}


@catalog_tool
def slugify_text(text: str, separator: str = "-") -> dict:
    """Make a URL slug from a title: lowercase ASCII words joined by hyphens, accents and punctuation removed.

    Args:
        text: The title or phrase, e.g. "Héllo, World! 2024".
        separator: The character between words. Defaults to "-".

    Returns:
        {"slug": str}, e.g. "hello-world-2024".
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return {"slug": separator.join(words)}


@catalog_tool
def to_title_case(text: str) -> dict:
    """Capitalise a headline in title case, keeping small words (a, of, the, and...) lowercase unless first or last.

    Args:
        text: The text, e.g. "the lord of the rings".

    Returns:
        {"title": str}, e.g. "The Lord of the Rings".
    """
    small = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "nor", "of", "on", "or", "the", "to", "via"}
    words = text.split()
    out = [w.lower() if 0 < i < len(words) - 1 and w.lower() in small else w[:1].upper() + w[1:].lower()
           for i, w in enumerate(words)]
    return {"title": " ".join(out)}


@catalog_tool
def change_case(text: str, case: Literal["upper", "lower", "snake", "camel", "kebab", "pascal"]) -> dict:
    """Convert text to UPPER, lower, snake_case, camelCase, kebab-case or PascalCase.

    Args:
        text: The text or identifier, e.g. "order total price".
        case: Target style: "upper", "lower", "snake", "camel", "kebab" or "pascal".

    Returns:
        {"text": converted text}.
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", spaced)]
    out = {
        "upper": text.upper(), "lower": text.lower(), "snake": "_".join(words), "kebab": "-".join(words),
        "camel": words[0] + "".join(w.title() for w in words[1:]) if words else "",
        "pascal": "".join(w.title() for w in words),
    }
    if case not in out:
        raise ToolException(f"unknown case {case!r}: use one of {', '.join(out)}")
    return {"text": out[case]}


@catalog_tool
def count_occurrences(text: str, substring: str, case_sensitive: bool = False) -> dict:
    """Count how many times a word or substring appears in a text (non-overlapping).

    Args:
        text: The text to search in.
        substring: The word or characters to count; must not be empty.
        case_sensitive: True to match case exactly. Defaults to False.

    Returns:
        {"substring", "count": int}.
    """
    if not substring:
        raise ToolException("substring must not be empty")
    hay, needle = (text, substring) if case_sensitive else (text.lower(), substring.lower())
    return {"substring": substring, "count": hay.count(needle)}


@catalog_tool
def extract_emails(text: str) -> dict:
    """Find all email addresses in a text, in order of appearance, without duplicates.

    Args:
        text: The text to scan, e.g. an email thread or a web page.

    Returns:
        {"emails": [str, ...]}.
    """
    return {"emails": list(dict.fromkeys(_EMAIL.findall(text)))}


@catalog_tool
def extract_urls(text: str) -> dict:
    """Find all web links (http, https or www.) in a text, in order, without duplicates.

    Args:
        text: The text to scan.

    Returns:
        {"urls": [str, ...]}.
    """
    urls = [u.rstrip(".,;:!?") for u in _URL.findall(text)]
    return {"urls": list(dict.fromkeys(urls))}


@catalog_tool
def extract_numbers(text: str) -> dict:
    """Pull every number out of a text, e.g. prices and quantities, as numbers.

    Args:
        text: The text to scan; thousands separators like 1,250 are understood.

    Returns:
        {"numbers": [float, ...]}.
    """
    out = []
    for tok in _NUMBER.findall(text):
        v = float(tok.replace(",", "")) if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", tok) else float(tok.replace(",", "."))
        out.append(int(v) if v.is_integer() else v)
    return {"numbers": out}


@catalog_tool
def truncate_text(text: str, max_chars: int, ellipsis: str = "...") -> dict:
    """Shorten a text to at most max_chars characters, cutting at a word boundary and adding an ellipsis.

    Args:
        text: The text to shorten.
        max_chars: Maximum length of the result including the ellipsis, at least 1.
        ellipsis: What to append when text was cut. Defaults to "...".

    Returns:
        {"text": shortened text, "truncated": bool}.
    """
    if max_chars < 1:
        raise ToolException("max_chars must be at least 1")
    if len(text) <= max_chars:
        return {"text": text, "truncated": False}
    room = max(max_chars - len(ellipsis), 0)
    cut = text[:room]
    if " " in cut and not text[room:room + 1].isspace():
        cut = cut[: cut.rfind(" ")]
    return {"text": (cut.rstrip() + ellipsis)[:max_chars], "truncated": True}


@catalog_tool
def levenshtein_distance(a: str, b: str) -> dict:
    """Edit distance between two strings: the fewest single-character insertions, deletions or substitutions.

    Args:
        a: First string.
        b: Second string.

    Returns:
        {"distance": int, "similarity": 1 - distance / longer length}.

    Example:
        levenshtein_distance("kitten", "sitting") -> {"distance": 3, "similarity": 0.571}
    """
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    d = prev[-1]
    return {"distance": d, "similarity": round(1 - d / max(len(a), len(b), 1), 3)}


@catalog_tool
def is_palindrome(text: str) -> dict:
    """Check whether a word or phrase reads the same backwards, ignoring case, spaces and punctuation.

    Args:
        text: The word or phrase, e.g. "A man, a plan, a canal: Panama".

    Returns:
        {"text", "is_palindrome": bool}.
    """
    letters = [c for c in text.lower() if c.isalnum()]
    return {"text": text, "is_palindrome": bool(letters) and letters == letters[::-1]}


@catalog_tool
def base64_encode(text: str) -> dict:
    """Encode text (UTF-8) as Base64.

    Args:
        text: The text to encode.

    Returns:
        {"base64": str}.

    Example:
        base64_encode("hello") -> {"base64": "aGVsbG8="}
    """
    return {"base64": base64.b64encode(text.encode("utf-8")).decode("ascii")}


@catalog_tool
def base64_decode(data: str) -> dict:
    """Decode a Base64 string back to UTF-8 text.

    Args:
        data: The Base64 string, e.g. "aGVsbG8=".

    Returns:
        {"text": str}.
    """
    try:
        return {"text": base64.b64decode(data.strip(), validate=True).decode("utf-8")}
    except (binascii.Error, UnicodeDecodeError):
        raise ToolException(f"{data!r} is not valid Base64 of UTF-8 text") from None


@catalog_tool
def sha256_hash(text: str) -> dict:
    """SHA-256 hash of a text (UTF-8), as 64 hex digits.

    Args:
        text: The text to hash.

    Returns:
        {"sha256": hex string}.
    """
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


@catalog_tool
def checksum_text(text: str, algorithm: Literal["md5", "sha1", "sha256", "sha512", "blake2b"] = "md5") -> dict:
    """Checksum (hex digest) of a text with a chosen hash algorithm, e.g. MD5 to compare with a published checksum.

    Args:
        text: The text to hash (UTF-8).
        algorithm: One of "md5", "sha1", "sha256", "sha512", "blake2b". Defaults to "md5".

    Returns:
        {"algorithm", "hex": str}.
    """
    if algorithm not in {"md5", "sha1", "sha256", "sha512", "blake2b"}:
        raise ToolException(f"unknown algorithm {algorithm!r}: use md5, sha1, sha256, sha512 or blake2b")
    return {"algorithm": algorithm, "hex": hashlib.new(algorithm, text.encode("utf-8")).hexdigest()}


@catalog_tool
def normalize_whitespace(text: str) -> dict:
    """Clean up spacing: collapse runs of spaces, tabs and newlines into single spaces and trim the ends.

    Args:
        text: The messy text.

    Returns:
        {"text": cleaned text}.
    """
    return {"text": " ".join(text.split())}


@catalog_tool
def find_and_replace(text: str, find: str, replace: str, case_sensitive: bool = True) -> dict:
    """Replace every occurrence of a word or phrase in a text with another.

    Args:
        text: The text to edit.
        find: The exact text to look for (not a regular expression); must not be empty.
        replace: The text to put in its place (may be empty to delete).
        case_sensitive: False to also match other capitalisations. Defaults to True.

    Returns:
        {"text": edited text, "replacements": int}.
    """
    if not find:
        raise ToolException("find must not be empty")
    pattern = re.compile(re.escape(find), 0 if case_sensitive else re.IGNORECASE)
    out, n = pattern.subn(lambda _: replace, text)
    return {"text": out, "replacements": n}


@catalog_tool
def url_encode(text: str, decode: bool = False) -> dict:
    """Percent-encode text for use in a URL query (space -> %20), or decode it back.

    Args:
        text: The text to encode, or the encoded text when decode is True.
        decode: True to decode percent-escapes instead of encoding. Defaults to False.

    Returns:
        {"text": result}.
    """
    return {"text": unquote(text) if decode else quote(text, safe="")}


@catalog_tool
def validate_json(text: str) -> dict:
    """Check whether a string is valid JSON and, if it is, pretty-print it; otherwise say where it breaks.

    Args:
        text: The JSON text to check.

    Returns:
        {"valid": true, "type": "object" | "array" | ..., "pretty": str} or {"valid": false, "error": str, "line": int, "column": int}.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return {"valid": False, "error": e.msg, "line": e.lineno, "column": e.colno}
    kind = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
    return {"valid": True, "type": kind, "pretty": json.dumps(value, indent=2, ensure_ascii=False)}
