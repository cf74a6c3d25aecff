"""Writes the format corpora (``<family>.jsonl``) from the families' documented syntax.

Each line: ``id``, ``text`` (a raw model output), optional ``reasoning_opened``,
``reasoning_format`` and ``finish_reason``, and ``expect``: ``content``, ``reasoning``, ``calls`` ([name, args] in
order) and ``invalid`` (the names, or null, of the calls that must come back invalid, in
order). The expected values are written here from what the text means, never from the
parser's output. Run ``python tests/data/formats/make_corpus.py`` to rewrite the files.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
J = lambda v: json.dumps(v, ensure_ascii=False)

W = ("get_weather", {"city": "Paris"})
W2 = ("get_weather", {"city": "Rome", "unit": "celsius"})
S = ("search", {"query": "llama.cpp tool calling"})
ADD = ("add", {"a": 3.5, "b": 4})
EV = ("create_event", {"title": "Sync", "attendees": ["ana@example.com", "bo@example.com"],
                       "details": {"room": "4B", "minutes": 30, "online": False}})
UNI = ("get_weather", {"city": "Zürich"})
UNI2 = ("echo", {"text": "日本語のテキスト 🚀 – “quoted”"})
EMPTY = ("get_time", {})
LONG = ("echo", {"text": "A long paragraph. " * 12})
MULTI = ("echo", {"text": "line one\nline two\n\ttabbed \\ backslash"})
ESC = ("echo", {"text": 'she said "hi" and left'})


def case(id, text, content="", calls=(), invalid=(), reasoning="", **extra):
    return {"id": id, "text": text, **extra,
            "expect": {"content": content, "reasoning": reasoning, "calls": [list(c) for c in calls],
                       "invalid": list(invalid)}}


def common(w, join, closer_text, opener):
    """Cases every family shares; ``w(name, args)`` writes one call, ``join`` several."""
    one = lambda c: w(*c)
    return [
        case("single", one(W), calls=[W]),
        case("parallel-two", join([one(W), one(W2)]), calls=[W, W2]),
        case("parallel-three", join([one(W), one(S), one(ADD)]), calls=[W, S, ADD]),
        case("nested-arguments", one(EV), calls=[EV]),
        case("unicode-city", one(UNI), calls=[UNI]),
        case("unicode-text", one(UNI2), calls=[UNI2]),
        case("empty-arguments", one(EMPTY), calls=[EMPTY]),
        case("numbers", one(ADD), calls=[ADD]),
        case("long-argument", one(LONG), calls=[LONG]),
        case("newlines-in-string", one(MULTI), calls=[MULTI]),
        case("escaped-quotes", one(ESC), calls=[ESC]),
        case("brackets-in-string", one(("echo", {"text": "a } b ] c ; d { e ["})),
             calls=[("echo", {"text": "a } b ] c ; d { e ["})]),
        case("closer-in-string", one(("echo", {"text": f"x {closer_text} y"})),
             calls=[("echo", {"text": f"x {closer_text} y"})]),
        case("closer-after-bracket-in-string", one(("echo", {"text": f"x [{{ {closer_text} y"})),
             calls=[("echo", {"text": f"x [{{ {closer_text} y"})]),
        case("opener-in-string", one(("echo", {"text": f"see {opener} here"})),
             calls=[("echo", {"text": f"see {opener} here"})]),
        case("plain-text", "The weather in Paris is sunny today.", content="The weather in Paris is sunny today."),
        case("empty-output", ""),
        case("braces-in-text", "Use {city} in the template, then [x] and ; done.",
             content="Use {city} in the template, then [x] and ; done."),
        case("unknown-tool", one(("book_flight", {"to": "Lima"})), invalid=["book_flight"]),
        case("schema-violation", one(("get_weather", {"unit": "celsius"})), invalid=["get_weather"]),
        case("wrong-enum", one(("get_weather", {"city": "Oslo", "unit": "kelvin"})), invalid=["get_weather"]),
        case("coerced-integer", one(("get_weather", {"city": "Oslo", "days": "3"})),
             calls=[("get_weather", {"city": "Oslo", "days": 3})]),
        case("parallel-second-unknown", join([one(W), one(("book_flight", {"to": "Lima"}))]),
             calls=[W], invalid=["book_flight"]),
        case("same-tool-twice", join([one(("search", {"query": "a"})), one(("search", {"query": "b"}))]),
             calls=[("search", {"query": "a"}), ("search", {"query": "b"})]),
    ]


def cuts(id, text, name, keep_name=True):
    """The text cut by max_tokens at a few points inside its (only) call: each an invalid call."""
    out = []
    body_start = text.index(name) + len(name) + 2
    last = text.rindex("}")  # the arguments' closing brace
    for k, at in enumerate((body_start + 3, (body_start + last) // 2, last)):
        out.append(case(f"{id}-cut-{k}", text[:at], invalid=[name if keep_name else None], finish_reason="length"))
    return out


# ---- hermes -------------------------------------------------------------------------------------

def hermes_call(name, args):
    return f'<tool_call>\n{J({"name": name, "arguments": args})}\n</tool_call>'


def hermes_cases(think=False):
    join = lambda calls: "\n".join(calls)
    out = common(hermes_call, join, "</tool_call>", "<tool_call>")
    one = lambda c: hermes_call(*c)
    out += [
        case("compact", f'<tool_call>{J({"name": "get_weather", "arguments": {"city": "Paris"}})}</tool_call>', calls=[W]),
        case("text-before", "Let me check the weather.\n\n" + one(W), content="Let me check the weather.", calls=[W]),
        case("text-after", one(W) + "\nI have asked for the weather.", content="I have asked for the weather.", calls=[W]),
        case("text-between", one(W) + "\nand also\n" + one(S), content="and also", calls=[W, S]),
        case("pretty-json", '<tool_call>\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n</tool_call>',
             calls=[W]),
        case("arguments-as-string", f'<tool_call>\n{J({"name": "get_weather", "arguments": J({"city": "Paris"})})}\n</tool_call>',
             calls=[W]),
        case("arguments-before-name", '<tool_call>\n{"arguments": {"city": "Paris"}, "name": "get_weather"}\n</tool_call>',
             calls=[W]),
        case("trailing-comma", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris",}}\n</tool_call>',
             invalid=["get_weather"]),
        case("not-json", "<tool_call>\nget_weather(city='Paris')\n</tool_call>", invalid=[None]),
        case("empty-call", "<tool_call></tool_call>", invalid=[None]),
        case("end-marker-after", "Done: " + one(W) + "<|im_end|>", content="Done:", calls=[W]),
        case("parallel-no-newline", one(W) + one(W2), calls=[W, W2]),
        case("cut-after-opener", "<tool_call>", invalid=[None], finish_reason="length"),
        case("cut-in-name", '<tool_call>\n{"name": "get_wea', invalid=[None], finish_reason="length"),
        case("partial-opener-text", "The tag <tool_ is not a call.", content="The tag <tool_ is not a call."),
        case("cut-in-opener", "Let me check. <tool_c", content="Let me check.", finish_reason="length"),
        # the function-tag form some Hermes and Qwen checkpoints write (llama.cpp reads it too)
        case("function-tag", "Checking.\n<function=get_weather>" + J(W[1]) + "</function>", content="Checking.", calls=[W]),
        case("function-name-attribute", '<function name="search">\n' + J(S[1]) + "\n</function>", calls=[S]),
        case("function-tag-then-block", "<function=get_weather>" + J(W[1]) + "</function>\n" + one(S), calls=[W, S]),
        case("function-tag-cut", '<function=echo>{"text": "unfinished', invalid=["echo"], finish_reason="length"),
        case("function-word-in-text", "A <function> tag and <function=x are text.",
             content="A <function> tag and <function=x are text."),
        case("partial-opener-at-stop", "The tag is <tool_c", content="The tag is <tool_c", finish_reason="stop"),
        # Hermes 2 Pro's own examples write the call as a Python dict
        case("python-dict", "<tool_call>\n{'arguments': {'city': 'Paris'}, 'name': 'get_weather'}\n</tool_call>", calls=[W]),
        # the model ended its turn right after the JSON: the call stands; cut by max_tokens there, it does not
        case("no-closer-at-stop", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n', calls=[W],
             finish_reason="stop"),
        # Qwen2.5 sometimes writes parallel calls in one block, one object after another or as a list
        case("two-objects-one-block", "<tool_call>\n" + J({"name": W[0], "arguments": W[1]}) + "\n"
             + J({"name": S[0], "arguments": S[1]}) + "\n</tool_call>", calls=[W, S]),
        case("list-in-block", "<tool_call>\n[" + J({"name": W[0], "arguments": W[1]}) + ", "
             + J({"name": S[0], "arguments": S[1]}) + "]\n</tool_call>", calls=[W, S]),
        case("extra-brace", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}}\n</tool_call>',
             invalid=["get_weather"]),
        case("no-closer-at-length", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n',
             invalid=["get_weather"], finish_reason="length"),
        # cut after a closing marker inside a string: the call ends at that marker, what follows is text
        case("closer-in-string-cut", '<tool_call>\n{"name": "echo", "arguments": {"text": "x</tool_call> tail',
             content="tail", invalid=["echo"], finish_reason="length"),
    ]
    out += cuts("single", one(W), "get_weather")
    out += cuts("nested", one(EV), "create_event")
    return out


# ---- qwen3 --------------------------------------------------------------------------------------

def qwen3_cases():
    out = [c for c in hermes_cases(think=True)]
    one = lambda c: hermes_call(*c)
    T = "The user wants the weather in Paris, so I should call get_weather."
    out += [
        case("think-then-call", f"<think>\n{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W]),
        case("think-then-answer", f"<think>\n{T}\n</think>\n\nIt is sunny in Paris.", reasoning=T,
             content="It is sunny in Paris."),
        case("think-then-parallel", f"<think>\n{T}\n</think>\n\n" + one(W) + "\n" + one(W2), reasoning=T, calls=[W, W2]),
        case("think-text-call", f"<think>\n{T}\n</think>\n\nLet me look.\n" + one(W), reasoning=T,
             content="Let me look.", calls=[W]),
        case("empty-think", "<think>\n\n</think>\n\n" + one(W), calls=[W]),
        case("call-inside-think", f"<think>\nMaybe {one(S)} first?\n</think>\n\n" + one(W),
             reasoning=f"Maybe {one(S)} first?", calls=[W]),
        case("cut-inside-think", f"<think>\n{T[:30]}", reasoning=T[:30].strip(), finish_reason="length"),
        case("opened-then-call", f"{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W], reasoning_opened=True),
        case("opened-then-answer", f"{T}\n</think>\n\nSunny.", reasoning=T, content="Sunny.", reasoning_opened=True),
        case("opened-cut", T[:40], reasoning=T[:40].strip(), reasoning_opened=True, finish_reason="length"),
        case("opened-unknown-then-call", f"{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W]),
        case("not-opened-no-think", "Sunny in Paris.", content="Sunny in Paris.", reasoning_opened=False),
        case("think-tag-in-argument", f"<think>\n{T}\n</think>\n\n" + one(("echo", {"text": "</think> stays"})),
             reasoning=T, calls=[("echo", {"text": "</think> stays"})]),
        case("think-end-marker", f"<think>\n{T}\n</think>\n\nDone.<|im_end|>", reasoning=T, content="Done."),
        case("think-unicode", "<think>\nÜberlegung: 東京 → Paris\n</think>\n\n" + one(W),
             reasoning="Überlegung: 東京 → Paris", calls=[W]),
    ]
    return out


# ---- llama3 -------------------------------------------------------------------------------------

def llama_call(name, args, key="parameters"):
    return J({"name": name, key: args})


def llama3_cases():
    join = lambda calls: "; ".join(calls)
    out = common(llama_call, join, "<|eom_id|>", "<|python_tag|>")
    one = lambda c: llama_call(*c)
    out += [
        case("arguments-key", llama_call(*W, key="arguments"), calls=[W]),
        case("python-tag", "<|python_tag|>" + one(W), calls=[W]),
        case("python-tag-eom", "<|python_tag|>" + one(W) + "<|eom_id|>", calls=[W]),
        case("eot-after", one(W) + "<|eot_id|>", calls=[W]),
        case("type-function", J({"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}), calls=[W]),
        case("semicolon-no-space", one(W) + ";" + one(W2), calls=[W, W2]),
        case("python-tag-parallel", "<|python_tag|>" + one(W) + "; " + one(S), calls=[W, S]),
        case("text-before", "Let me check that for you.\n\n" + one(W), content="Let me check that for you.", calls=[W]),
        case("text-before-tag", "Here are some results: <|python_tag|>" + one(S), content="Here are some results:", calls=[S]),
        case("text-after", one(W) + "\n\nI will report back.", content="I will report back.", calls=[W]),
        case("leading-whitespace", "\n\n  " + one(W), calls=[W]),
        case("pretty-json", '{\n  "name": "get_weather",\n  "parameters": {\n    "city": "Paris"\n  }\n}', calls=[W]),
        case("json-answer-not-a-call", J({"city": "Paris", "temperature": 21}), content=J({"city": "Paris", "temperature": 21})),
        case("name-without-parameters", J({"name": "Paris", "country": "France"}),
             content=J({"name": "Paris", "country": "France"})),
        case("builtin-brave", '<|python_tag|>brave_search.call(query="weather in Paris")<|eom_id|>',
             calls=[("brave_search", {"query": "weather in Paris"})]),
        case("code-interpreter", '<|python_tag|>import sys\n\nprint(sys.version)<|eom_id|>',
             calls=[("python", {"code": "import sys\n\nprint(sys.version)"})]),
        case("trailing-comma", '{"name": "get_weather", "parameters": {"city": "Paris",}}', invalid=["get_weather"]),
        case("trailing-semicolon", one(W) + ";", calls=[W]),
        case("cut-in-head", '{"name": "get_weather", "param', invalid=["get_weather"], finish_reason="length"),
        case("cut-after-tag", "<|python_tag|>", invalid=[None], finish_reason="length"),
        case("parameters-as-string", J({"name": "get_weather", "parameters": J({"city": "Paris"})}), calls=[W]),
        case("partial-tag-text", "A tag like <|python is not one.", content="A tag like <|python is not one."),
        case("code-block", "```json\n" + one(W) + "\n```", calls=[W]),
        case("parameters-first", J({"parameters": {"city": "Paris"}, "name": "get_weather"}), calls=[W]),
        case("json-list", "[" + one(W) + ", " + one(S) + "]", calls=[W, S]),
        case("json-list-cut", "[" + one(W) + ', {"name": "search", "parameters": {"query": "lla',
             calls=[W], invalid=["search"], finish_reason="length"),
        case("brackets-not-a-list", "Pick from [1, 2] or [a].", content="Pick from [1, 2] or [a]."),
        # Meta's documented alternative for custom tools: <function=NAME>{...}</function>
        case("function-tag", "<function=get_weather>" + J(W[1]) + "</function>", calls=[W]),
        case("function-tag-text-before", "I'll look it up.\n<function=search>" + J(S[1]) + "</function><|eom_id|>",
             content="I'll look it up.", calls=[S]),
        case("function-tag-cut", '<function=echo>{"text": "half', invalid=["echo"], finish_reason="length"),
        case("cut-in-tag", "Searching now <|python_t", content="Searching now", finish_reason="length"),
        case("code-block-with-text", "I will call it:\n```\n" + one(W) + "\n```\nThat is all.",
             content="I will call it:\nThat is all.", calls=[W]),
        case("code-block-not-a-call", "```json\n{\"city\": \"Paris\"}\n```", content="```json\n{\"city\": \"Paris\"}\n```"),
        case("newline-separated", one(W) + "\n" + one(W2), calls=[W, W2]),
    ]
    out += cuts("single", one(W), "get_weather")
    out += cuts("nested", one(EV), "create_event")
    return out


# ---- mistral ------------------------------------------------------------------------------------

def mistral_obj(name, args, id=None):
    o = {"name": name, "arguments": args}
    if id:
        o["id"] = id
    return J(o)


def mistral_v3(calls_text):
    return "[TOOL_CALLS][" + ", ".join(calls_text) + "]"


def mistral_cases():
    join = lambda calls: mistral_v3([c[len("[TOOL_CALLS]["):-1] for c in calls])
    w = lambda name, args: mistral_v3([mistral_obj(name, args)])
    out = common(w, join, "]", "[TOOL_CALLS]")
    v11 = lambda name, args: f"[TOOL_CALLS]{name}{J(args)}"
    out += [
        case("space-after-marker", "[TOOL_CALLS] [" + mistral_obj(*W) + "]", calls=[W]),
        case("with-ids", mistral_v3([mistral_obj(*W, id="a1b2c3d4e"), mistral_obj(*S, id="Z9y8X7w6V")]), calls=[W, S]),
        case("arguments-before-name", '[TOOL_CALLS] [{"arguments": {"city": "Paris"}, "name": "get_weather"}]', calls=[W]),
        case("name-in-arguments", '[TOOL_CALLS] [{"arguments": {"query": "name"}, "name": "search"}]',
             calls=[("search", {"query": "name"})]),
        case("text-before", "Hello[TOOL_CALLS][" + mistral_obj(*W) + "]", content="Hello", calls=[W]),
        case("text-after", mistral_v3([mistral_obj(*W)]) + "\nextra trailing text", content="extra trailing text", calls=[W]),
        case("end-marker", mistral_v3([mistral_obj(*W)]) + "</s>", calls=[W]),
        case("single-object", "[TOOL_CALLS]" + mistral_obj(*W), calls=[W]),
        case("bare-list", "[" + mistral_obj(*W) + "]", calls=[W]),
        case("v11-single", v11(*W), calls=[W]),
        case("v11-parallel", v11(*ADD) + v11("add", {"a": 3, "b": 6}), calls=[ADD, ("add", {"a": 3, "b": 6})]),
        case("v11-args-token", "[TOOL_CALLS]get_weather[ARGS]" + J(W[1]), calls=[W]),
        case("v11-call-id", "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]" + J(W[1]), calls=[W]),
        case("v11-text-before", "hi{hi" + v11(*S), content="hi{hi", calls=[S]),
        case("v11-nested", v11(*EV), calls=[EV]),
        case("v11-unicode", v11(*UNI2), calls=[UNI2]),
        case("v11-empty-arguments", v11(*EMPTY), calls=[EMPTY]),
        case("v11-marker-in-string", v11("echo", {"text": "[TOOL_CALLS] inside"}),
             calls=[("echo", {"text": "[TOOL_CALLS] inside"})]),
        case("v11-unknown", v11("book_flight", {"to": "Lima"}), invalid=["book_flight"]),
        case("v11-no-arguments", "[TOOL_CALLS]get_time", invalid=["get_time"]),
        case("v11-cut", '[TOOL_CALLS]echo{"text": "print(\\"hello', invalid=["echo"], finish_reason="length"),
        case("trailing-comma", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris",}}]', invalid=["get_weather"]),
        case("not-json", "[TOOL_CALLS] not json at all", invalid=[None]),
        case("cut-in-marker", "Calling it [TOOL_CA", content="Calling it", finish_reason="length"),
        case("cut-after-marker", "[TOOL_CALLS]", invalid=[None], finish_reason="length"),
        case("cut-between-calls", "[TOOL_CALLS][" + mistral_obj(*W) + ", ", calls=[W], finish_reason="length"),
        case("arguments-as-string", "[TOOL_CALLS][" + J({"name": "get_weather", "arguments": J(W[1])}) + "]", calls=[W]),
        case("partial-marker-text", "Text with [TOOL_ in it.", content="Text with [TOOL_ in it."),
        # Magistral: [THINK] reasoning first
        case("magistral-think-call", "[THINK]The user wants Paris.[/THINK]" + v11(*W), reasoning="The user wants Paris.",
             calls=[W], reasoning_format="magistral"),
        case("magistral-think-answer", "[THINK]Easy.[/THINK]It is 4.", reasoning="Easy.", content="It is 4.",
             reasoning_format="magistral"),
        case("magistral-call-in-think", "[THINK]Maybe " + v11(*S) + "?[/THINK]" + v11(*W),
             reasoning="Maybe " + v11(*S) + "?", calls=[W], reasoning_format="magistral"),
        case("magistral-cut-in-think", "[THINK]Still thinking about", reasoning="Still thinking about",
             reasoning_format="magistral", finish_reason="length"),
    ]
    out += cuts("single", w(*W), "get_weather")
    out += cuts("nested", w(*EV), "create_event")
    out += cuts("v11", v11(*EV), "create_event")
    return out


# ---- deepseek-r1 --------------------------------------------------------------------------------

CB, CE, B, E, SEP = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"


def ds_one(name, args):
    return f"{B}function{SEP}{name}\n```json\n{J(args)}\n```{E}"


def ds_calls(calls):
    return CB + "\n".join(calls) + CE


def deepseek_cases():
    w = lambda name, args: ds_calls([ds_one(name, args)])
    join = lambda calls: ds_calls([c[len(CB):-len(CE)] for c in calls])
    out = common(w, join, E, B)
    T = "The user asks for the weather. I should call the tool."
    one = lambda c: w(*c)
    out += [
        case("think-then-call", f"<think>\n{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W]),
        case("opened-then-call", f"{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W], reasoning_opened=True),
        case("opened-unknown-then-call", f"{T}\n</think>\n\n" + one(W), reasoning=T, calls=[W]),
        case("opened-then-answer", f"{T}\n</think>\n\nIt is sunny.<｜end▁of▁sentence｜>", reasoning=T, content="It is sunny.",
             reasoning_opened=True),
        case("opened-cut", T[:25], reasoning=T[:25].strip(), reasoning_opened=True, finish_reason="length"),
        case("think-cut", "<think>\n" + T[:25], reasoning=T[:25].strip(), finish_reason="length"),
        case("call-inside-think", f"<think>\nShould I write {one(S)}?\n</think>\n\n" + one(W),
             reasoning=f"Should I write {one(S)}?", calls=[W]),
        case("text-before", "Let me check.\n" + one(W), content="Let me check.", calls=[W]),
        case("v31-style", f"{CB}{B}get_weather{SEP}{J(W[1])}{E}{CE}", calls=[W]),
        case("no-outer-begin", ds_one(*W), calls=[W]),
        case("fence-without-json", f"{CB}{B}function{SEP}get_weather\n```\n{J(W[1])}\n```{E}{CE}", calls=[W]),
        case("trailing-comma", f'{CB}{B}function{SEP}get_weather\n```json\n{{"city": "Paris",}}\n```{E}{CE}',
             invalid=["get_weather"]),
        case("cut-in-name", f"{CB}{B}function{SEP}get_wea", invalid=[None], finish_reason="length"),
        case("end-of-sentence", one(W) + "<｜end▁of▁sentence｜>", calls=[W]),
        case("no-call-end-at-stop", f"{CB}{B}function{SEP}get_weather\n```json\n{J(W[1])}\n```", calls=[W], finish_reason="stop"),
    ]
    out += cuts("single", one(W), "get_weather")
    out += cuts("nested", one(EV), "create_event")
    return out


# ---- granite -------------------------------------------------------------------------------------

TC = "<|tool_call|>"


def granite_list(objects):
    return TC + "[" + ", ".join(objects) + "]"


def granite_cases():
    obj = lambda name, args: J({"name": name, "arguments": args})
    w = lambda name, args: granite_list([obj(name, args)])
    join = lambda calls: granite_list([c[len(TC) + 1 : -1] for c in calls])
    out = common(w, join, "]", TC)
    one = lambda c: w(*c)
    out += [
        case("space-after-marker", TC + " [" + obj(*W) + "]", calls=[W]),
        case("newline-after-marker", TC + "\n[" + obj(*W) + ", " + obj(*S) + "]", calls=[W, S]),
        case("single-object", TC + obj(*W), calls=[W]),
        case("single-object-then-text", TC + obj(*W) + "\nDone.", content="Done.", calls=[W]),
        case("arguments-before-name", TC + '[{"arguments": {"city": "Paris"}, "name": "get_weather"}]', calls=[W]),
        case("arguments-as-string", TC + "[" + J({"name": "get_weather", "arguments": J(W[1])}) + "]", calls=[W]),
        case("arguments-as-empty-string", TC + '[{"name": "get_time", "arguments": ""}]', calls=[EMPTY]),
        case("arguments-as-bad-string", TC + '[{"name": "get_weather", "arguments": "city=Paris"}]', invalid=["get_weather"]),
        case("text-before", "Let me check the weather.\n" + one(W), content="Let me check the weather.", calls=[W]),
        case("text-after", one(W) + "\nI have asked for it.", content="I have asked for it.", calls=[W]),
        case("two-markers", one(W) + one(S), calls=[W, S]),
        case("end-of-text", one(W) + "<|end_of_text|>", calls=[W]),
        case("answer-end-of-text", "It is sunny in Paris.<|end_of_text|>", content="It is sunny in Paris."),
        case("pretty-json", TC + '[\n  {\n    "name": "get_weather",\n    "arguments": {\n      "city": "Paris"\n    }\n  }\n]',
             calls=[W]),
        case("trailing-comma", TC + '[{"name": "get_weather", "arguments": {"city": "Paris",}}]', invalid=["get_weather"]),
        case("not-json", TC + " get_weather(city='Paris')", invalid=[None]),
        case("list-of-strings", TC + '["get_weather"]', invalid=[None]),
        case("no-name", TC + '[{"arguments": {"city": "Paris"}}]', invalid=[None]),
        case("marker-in-text-string", 'The string "' + TC + '" opens a call.\n' + one(W), content='The string "', invalid=[None],
             calls=[W]),
        case("partial-marker-text", "A tag like <|tool_ is not one.", content="A tag like <|tool_ is not one."),
        case("partial-marker-at-stop", "The tag is <|tool_c", content="The tag is <|tool_c", finish_reason="stop"),
        case("cut-in-marker", "Calling it <|tool_ca", content="Calling it", finish_reason="length"),
        case("cut-after-marker", TC, invalid=[None], finish_reason="length"),
        case("cut-in-name", TC + '[{"name": "get_wea', invalid=[None], finish_reason="length"),
        case("cut-between-calls", TC + "[" + obj(*W) + ", ", calls=[W], finish_reason="length"),
        case("cut-in-second-call", TC + "[" + obj(*W) + ', {"name": "search", "arguments": {"query": "lla',
             calls=[W], invalid=["search"], finish_reason="length"),
        case("no-closing-bracket-at-stop", TC + "[" + obj(*W), calls=[W], finish_reason="stop"),
        # Granite 3.3's thinking mode is not read: its blocks stay in the content
        case("think-blocks-are-content", "<think>Paris.</think><response>Sunny.</response>",
             content="<think>Paris.</think><response>Sunny.</response>"),
    ]
    out += cuts("single", one(W), "get_weather")
    out += cuts("nested", one(EV), "create_event")
    return out


def write(name, cases):
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(name, len(cases))


if __name__ == "__main__":
    write("hermes", hermes_cases())
    write("qwen3", qwen3_cases())
    write("llama3", llama3_cases())
    write("mistral", mistral_cases())
    write("deepseek-r1", deepseek_cases())
    write("granite", granite_cases())
