"""Does cnnkit.baseline keep 6-01's numbers where later notebooks find them?"""

from __future__ import annotations

import importlib
import json

import pytest

from tests.conftest import load_cnnkit

load_cnnkit()
baseline = importlib.import_module("cnnkit_trusted.baseline")


@pytest.fixture
def places(monkeypatch, tmp_path):
    """The torch cache and the data folder inside tmp_path; full mode unless a test says so."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("CNNKIT_SMOKE", raising=False)
    return tmp_path


def test_nothing_saved_means_none(places):
    assert baseline.load_baseline() is None


def test_a_full_run_is_saved_in_the_torch_cache_and_read_back(places):
    path = baseline.save_baseline(0.5321, 1_707_274, "full")
    assert path == places / "torch" / "cnnkit" / "fc_baseline.json"
    assert json.loads(path.read_text()) == {
        "accuracy": 0.5321,
        "parameters": 1_707_274,
        "mode": "full",
    }
    assert baseline.load_baseline() == {"accuracy": 0.5321, "parameters": 1_707_274, "mode": "full"}


def test_a_smoke_run_stays_beside_the_data_and_never_replaces_a_full_run(places, monkeypatch):
    baseline.save_baseline(0.53, 100, "full")
    monkeypatch.setenv("CNNKIT_SMOKE", "1")
    assert baseline.load_baseline() is None  # smoke mode reads the smoke run's numbers only
    path = baseline.save_baseline(0.2, 7, "smoke")
    assert path == places / "data" / "cache" / "fc_baseline.json"
    assert baseline.load_baseline() == {"accuracy": 0.2, "parameters": 7, "mode": "smoke"}
    monkeypatch.delenv("CNNKIT_SMOKE")
    assert baseline.load_baseline()["accuracy"] == 0.53


def test_saving_again_replaces_the_numbers(places):
    baseline.save_baseline(0.4, 10, "full")
    baseline.save_baseline(0.45, 12, "full")
    assert baseline.load_baseline() == {"accuracy": 0.45, "parameters": 12, "mode": "full"}
    assert [p.name for p in (places / "torch" / "cnnkit").iterdir()] == ["fc_baseline.json"]


@pytest.mark.parametrize(
    "accuracy, parameters, mode",
    [(1.5, 10, "full"), (float("nan"), 10, "full"), (0.5, -1, "full"), (0.5, 2.0, "full")]
    + [(0.5, True, "full"), (0.5, 10, "fast")],
)
def test_bad_values_are_refused(places, accuracy, parameters, mode):
    with pytest.raises(ValueError):
        baseline.save_baseline(accuracy, parameters, mode)
    assert baseline.load_baseline() is None


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[1, 2]",
        '{"accuracy": 0.5}',
        '{"accuracy": "high", "parameters": 3, "mode": "full"}',
        '{"accuracy": 0.5, "parameters": 3.5, "mode": "full"}',
    ],
)
def test_an_unreadable_file_reads_as_no_baseline(places, content):
    path = baseline.baseline_path("full")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert baseline.load_baseline() is None


def test_the_comparison_prints_both_or_asks_for_6_01(places, capsys):
    assert baseline.print_comparison("6-02 TinyCNN", 0.61, 5_290) is None
    out = capsys.readouterr().out
    assert "6-02 TinyCNN: test accuracy 61.0%, 5,290 parameters" in out
    assert "run 6-01 first to compare" in out
    baseline.save_baseline(0.5321, 1_707_274, "full")
    assert baseline.print_comparison("6-02 TinyCNN", 0.61, 5_290)["parameters"] == 1_707_274
    out = capsys.readouterr().out
    assert "6-01 FC baseline (full run): test accuracy 53.2%, 1,707,274 parameters" in out
