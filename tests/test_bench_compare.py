"""`bench compare`: accuracy runs side by side (table and forest plot of differences to plain)."""

from __future__ import annotations

import argparse
import json

import pytest
from test_bench_accuracy import SMALL, fake_factory

from langchain_attention_buckets.bench.accuracy import run_accuracy
from langchain_attention_buckets.bench.compare import (
    add_compare_arguments,
    compare_main,
    load_run,
    markdown,
    parse_run,
    rows,
)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    kv = run_accuracy("kv-short", configs="plain,paper,default", output=base / "kv", plots=False, progress=False,
                      factory=fake_factory("kv-short", 8, 4, []), **SMALL)
    tools = run_accuracy("tools", configs="plain,paper,paper-max", output=base / "tools", plots=False,
                         progress=False, factory=fake_factory("tools", 8, 4, []), **SMALL)
    return base, kv, tools


def test_rows_line_up_runs_and_configs(two_runs):
    base, kv, tools = two_runs
    table = rows([("kv", kv), ("tools", tools)])
    got = {(r["run"], r["config"]): r for r in table}
    assert set(got) == {("kv", "plain"), ("kv", "paper"), ("kv", "default"),
                        ("tools", "plain"), ("tools", "paper"), ("tools", "paper-max")}
    assert got[("tools", "paper")]["metric"] == "tool"  # the run's primary metric
    assert got[("kv", "plain")]["d_mean"] is None  # the baseline has no difference to itself
    # the fake fails plain in the middle third and paper nowhere: +1/3 on the mean, +1 at the worst
    assert got[("kv", "paper")]["d_mean"] == pytest.approx(1 / 3)
    assert got[("kv", "paper")]["d_worst"] == pytest.approx(1.0)
    assert got[("kv", "default")]["d_mean"] == 0.0  # default is the plain model where no tools are bound
    lo, hi = got[("kv", "paper")]["d_mean_ci"]
    assert lo <= 1 / 3 <= hi
    text = markdown(table)
    assert "| kv | paper | 100 [" in text and "| +33 [" in text and "+4/-0" in text
    assert text.count("\n") == len(table) + 1


def test_command_writes_table_and_forest_plot(two_runs, tmp_path, capsys):
    base, _, _ = two_runs
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    png, md = tmp_path / "forest.png", tmp_path / "t.md"
    args = parser.parse_args([f"kv-short={base / 'kv'}", str(base / "tools" / "results.json"),
                              "--output", str(png), "--markdown", str(md)])
    assert compare_main(args) == 0
    out = capsys.readouterr().out
    assert "| kv-short | paper |" in out and "| results.json | paper-max |" in out
    assert png.stat().st_size > 10_000 and md.read_text().startswith("| run | config |")


def test_bad_folders_are_refused_with_the_reason(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    assert compare_main(parser.parse_args([str(tmp_path / "nothing")])) == 2
    assert "no results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text(json.dumps({"records": []}))
    with pytest.raises(ValueError, match="not a 'bench accuracy' results file"):
        load_run(tmp_path)
    assert parse_run("a=b/c") == ("a", "b/c") and parse_run("b/c") == ("c", "b/c")
