"""One JSON and one Markdown report from the runs of ``scripts/gpu_check.sh`` (``python -m ...speed.report FOLDER``).

Reads every ``speed.json`` under FOLDER (one folder per shape and run), the tests' JUnit XML
(``gpu-tests.xml``) and the script's step log (``steps.tsv``: step, exit status, seconds) and
writes ``report.json`` and ``report.md`` into FOLDER: the device, the tests' counts, per shape
the N x length table of prefill and decode step with KV bytes and peak memory, N = 1 against
transformers ``generate``, six buckets batched against in sequence, and the prefix cache on an
agent's next turn.

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
        if len(parts) == 3:
            out.append({"step": parts[0], "status": int(parts[1]), "seconds": float(parts[2])})
    return out


def collect(folder: Path) -> dict:
    runs = {}
    for path in sorted(folder.glob("*/speed.json")):
        try:
            runs[path.parent.name] = json.loads(path.read_text())
        except ValueError:
            runs[path.parent.name] = {"error": f"unreadable {path.name}"}
    return {"tests": _tests(folder), "steps": _steps(folder), "runs": runs}


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def markdown(report: dict) -> str:
    lines = ["# GPU check", ""]
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
        lines += [f"| {s['step']} | {s['status']} | {s['seconds']:.0f} |" for s in report["steps"]]
        lines.append("")
    for name, run in report["runs"].items():
        lines += [f"## {name}: {run.get('model', '?')}", ""]
        if "error" in run:
            lines += [run["error"], ""]
            continue
        if run.get("buckets"):
            lines += ["| N | tokens | TTFT ms | x N=1 | decode step ms | x N=1 | KV MiB | peak MiB | sequential TTFT / decode |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in run["buckets"]:
                seq = (f"x{r['batched_speedup_ttft']:.2f} / x{r['batched_speedup_decode']:.2f} slower"
                       if "sequential" in r else "")
                lines.append(f"| {r['n']} | {r['length']} | {_ms(r['ttft_s'])} | {r['ttft_ratio']:.2f} | "
                             f"{_ms(r['decode_step_s'])} | {r['decode_step_ratio']:.2f} | {r['kv_bytes'] / 2**20:.0f} | "
                             f"{r['peak_bytes'] / 2**20:.0f} | {seq} |")
            lines.append("")
        for r in run.get("hf", []):
            lines.append(f"- N = 1 against transformers `generate`, {r['length']} tokens: TTFT x{r['ttft_ratio']:.2f}, "
                         f"decode step x{r['decode_step_ratio']:.2f}")
        if "prefix" in run:
            p = run["prefix"]
            lines.append(f"- agent turn 2 ({p['turn2_tokens']} tokens, {p['buckets']} buckets, {p['cached_tokens']} cached): "
                         f"TTFT {p['cache_ttft_s']:.3f} s with the prefix cache, {p['no_cache_ttft_s']:.3f} s without "
                         f"(x{p['speedup']:.1f}); the cache holds {p['prefix_cache_bytes'] / 2**20:.0f} MiB")
        lines.append("")
    return "\n".join(lines)


def write(folder: Path) -> dict:
    report = collect(folder)
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(markdown(report))
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
