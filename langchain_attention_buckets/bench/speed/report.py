"""One JSON and one Markdown report from the runs of ``scripts/gpu_check.sh`` (``python -m ...speed.report FOLDER``).

Reads every ``speed.json`` under FOLDER (one folder per shape and run), the tests' JUnit XML
(``gpu-tests.xml``), the script's step log (``steps.tsv``: step, exit status or "skipped",
seconds, a note) and its preflight's ``environment.json`` (versions, the card), and
writes ``report.json`` and ``report.md`` into FOLDER: the device, the tests' counts, per shape
the N x length table of prefill and decode step with KV bytes and peak memory, N = 1 against
transformers ``generate``, six buckets batched against in sequence, and the prefix cache on an
agent's next turn; points not measured say why (out of memory, skipped for time). The script
runs it after every step (``python .../speed/report.py FOLDER``: it needs no import of the package).

May import nothing of the package but the standard library.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _tests(folder: Path) -> dict | None:
    path = folder / "gpu-tests.xml"
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {"error": "unreadable gpu-tests.xml"}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {"error": "no testsuite in gpu-tests.xml"}
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    bad = [c for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    n["failed_names"] = [c.get("name") for c in bad]
    return n


def _steps(folder: Path) -> list[dict]:
    path = folder / "steps.tsv"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            status = int(parts[1]) if parts[1].lstrip("-").isdigit() else parts[1]  # or "skipped"
            step = {"step": parts[0], "status": status, "seconds": float(parts[2])}
            if len(parts) > 3 and parts[3]:
                step["note"] = parts[3]
            out.append(step)
    return out


def collect(folder: Path) -> dict:
    runs = {}
    for path in sorted(folder.glob("*/speed.json")):
        try:
            runs[path.parent.name] = json.loads(path.read_text())
        except ValueError:
            runs[path.parent.name] = {"error": f"unreadable {path.name}"}
    env = None
    if (folder / "environment.json").is_file():  # the script's preflight: python, torch, CUDA, the card
        try:
            env = json.loads((folder / "environment.json").read_text())
        except ValueError:
            env = {"error": "unreadable environment.json"}
    return {"environment": env, "tests": _tests(folder), "steps": _steps(folder), "runs": runs}


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def _why(row: dict) -> str:
    """Why a point was not measured: its error ("out of memory", ...) or the reason it was skipped."""
    return row.get("error") or f"skipped: {row.get('skipped', '?')}"


def _run_lines(run: dict) -> list[str]:
    lines = []
    switches = {k: v for k, v in (run.get("fast_paths") or {}).items() if v}
    if switches:
        lines += ["Fast paths on: " + ", ".join(f"{k}={v}" for k, v in switches.items()) + ".", ""]
    for part, error in (run.get("errors") or {}).items():
        lines += [f"- part `{part}` failed: {error}"]
    if run.get("buckets"):
        lines += ["| N | tokens | TTFT ms | x N=1 | decode step ms | x N=1 | KV MiB | peak MiB | sequential TTFT / decode |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in run["buckets"]:
            kv = f"{r['kv_bytes'] / 2**20:.0f}" if "kv_bytes" in r else ""
            if "ttft_s" not in r:
                lines.append(f"| {r['n']} | {r['length']} | {_why(r)} | | | | {kv} | | |")
                continue
            seq = ""
            if "batched_speedup_ttft" in r:
                seq = f"x{r['batched_speedup_ttft']:.2f} / x{r['batched_speedup_decode']:.2f} slower"
            elif "sequential" in r:
                seq = _why(r["sequential"])
            lines.append(f"| {r['n']} | {r['length']} | {_ms(r['ttft_s'])} | {r['ttft_ratio']:.2f} | "
                         f"{_ms(r['decode_step_s'])} | {r['decode_step_ratio']:.2f} | {kv} | "
                         f"{r['peak_bytes'] / 2**20:.0f} | {seq} |")
        lines.append("")
    for r in run.get("hf", []):
        if "ttft_ratio" not in r:
            lines.append(f"- N = 1 against transformers `generate`, {r['length']} tokens: {_why(r)}")
            continue
        lines.append(f"- N = 1 against transformers `generate`, {r['length']} tokens: TTFT x{r['ttft_ratio']:.2f}, "
                     f"decode step x{r['decode_step_ratio']:.2f}")
    if "prefix" in run:
        p = run["prefix"]
        lines.append(f"- agent turn 2 ({p['turn2_tokens']} tokens, {p['buckets']} buckets, {p['cached_tokens']} cached): "
                     f"TTFT {p['cache_ttft_s']:.3f} s with the prefix cache, {p['no_cache_ttft_s']:.3f} s without "
                     f"(x{p['speedup']:.1f}); the cache holds {p['prefix_cache_bytes'] / 2**20:.0f} MiB")
    return lines


def markdown(report: dict) -> str:
    lines = ["# GPU check", ""]
    env = report.get("environment")
    if env:
        lines += ["Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".", ""]
    first = next(iter(report["runs"].values()), {})
    if first:
        lines += [f"Device: {first.get('hardware', '?')} ({first.get('device', '?')}, {first.get('dtype', '?')}).", ""]
    t = report["tests"]
    if t:
        failed = ", ".join(t.get("failed_names") or []) or "none"
        lines += [f"Tests (`-m gpu`): {t.get('passed', 0)} passed, {t.get('failures', 0) + t.get('errors', 0)} failed "
                  f"({failed}), {t.get('skipped', 0)} skipped.", ""]
    if report["steps"]:
        lines += ["| step | exit status | seconds |", "|---|---|---|"]
        for s in report["steps"]:
            note = f" ({s['note']})" if s.get("note") else ""
            lines.append(f"| {s['step']} | {s['status']}{note} | {s['seconds']:.0f} |")
        lines.append("")
    for name, run in report["runs"].items():
        lines += [f"## {name}: {run.get('model', '?')}", ""]
        if "error" in run:
            lines += [run["error"], ""]
            continue
        try:
            lines += _run_lines(run)
        except (KeyError, TypeError, ValueError) as exc:  # one odd file must not cost the others their report
            lines.append(f"(could not read this run's results: {type(exc).__name__}: {exc})")
        lines.append("")
    return "\n".join(lines)


def write(folder: Path) -> dict:
    report = collect(folder)
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", markdown(report))):
        tmp = folder / f"{name}.tmp"  # replaced in one step: the script rewrites the report after every step
        tmp.write_text(text)
        tmp.replace(folder / name)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m langchain_attention_buckets.bench.speed.report FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    report = write(folder)
    print(f"wrote {folder / 'report.json'} and {folder / 'report.md'} ({len(report['runs'])} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
