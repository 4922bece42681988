"""Does the benchmark build a realistic class and report comparable figures for both systems?"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from autograder.bench import MemorySampler, build_class, format_figures, run_bench


def test_class_mix(course, tmp_path):
    kinds = build_class(course, "m06_02_convolution", tmp_path, 40)
    assert len(list(tmp_path.glob("*.ipynb"))) == 40
    assert sum(k == "hostile" for k in kinds.values()) == 2
    assert sum(k.startswith("wrong:") for k in kinds.values()) == 6
    assert sum(k == "correct" for k in kinds.values()) == 32


def test_memory_sampler_sees_child_trees():
    child = subprocess.Popen(
        ["python3", "-c", "x = bytearray(80 * 2**20); import time; time.sleep(2)"]
    )
    try:
        with MemorySampler(os.getpid(), interval=0.1) as sampler:
            time.sleep(1.0)
    finally:
        child.kill()
        child.wait()
    assert sampler.peak_mib > 60


@pytest.mark.slow
def test_tiny_bench_writes_figures(course, tmp_path):
    figures = run_bench(
        sizes=(2,),
        baseline_size=2,
        workers=2,
        worker_counts=(1,),
        worker_size=2,
        out=tmp_path,
        course=course,
        cold_repeats=1,
    )
    data = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 1000
    ours, theirs = data["baseline"]["ours"], data["baseline"]["nbgrader"]
    assert ours["submissions"] == theirs["submissions"] == 2
    assert ours["per_minute"] > 0 and theirs["per_minute"] > 0
    assert data["baseline"]["ratio"] == pytest.approx(ours["per_minute"] / theirs["per_minute"])
    assert "throughput ratio" in format_figures(figures)
    cold = data["cold_single"]
    assert len(cold["ours_seconds"]) == len(cold["nbgrader_seconds"]) == 1
    assert cold["ratio"] == pytest.approx(cold["nbgrader_median"] / cold["ours_median"])
    assert "one submission from a cold start" in format_figures(figures)
