"""When the daemon retrains: the schedule, the waiting conditions, and what
`kenning/train` answers. Plain functions; the whole run is in tests/e2e."""

from __future__ import annotations

import pytest
from kenning.server.scheduler import MIN_NEW_PICKS, Conditions, next_due, parts_for, why_not
from kenning.server.settings import SettingsError, TrainSettings, load_settings

READY = Conditions(busy=None, has_gpu=True, on_cpu=False, new_chunks=500, min_new_chunks=200)


def test_a_run_starts_when_idle_with_a_gpu_and_enough_new_code():
    assert why_not(READY) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"busy": "the first index is still being built"}, "waiting for the index to be idle"),
        ({"has_gpu": False}, "no GPU here and train.on_cpu is false"),
        (
            {"new_chunks": 199},
            "199 chunks changed and 0 results were picked since the last run; "
            "train.min_new_chunks is 200",
        ),
    ],
)
def test_each_unmet_condition_is_named(change, reason):
    assert reason in why_not(Conditions(**{**READY.__dict__, **change}))


def test_on_cpu_allows_a_machine_without_a_gpu():
    assert why_not(Conditions(**{**READY.__dict__, "has_gpu": False, "on_cpu": True})) is None


def test_without_a_gpu_the_adapter_alone_is_trained_on_schedule():
    cpu_only = Conditions(**{**READY.__dict__, "has_gpu": False, "adapter": True})
    assert why_not(cpu_only) is None
    assert parts_for(cpu_only, forced=False) == "adapter"
    # Forced (kenning/train with force), the full model is trained on the CPU too.
    assert parts_for(cpu_only, forced=True) == "both"
    assert parts_for(Conditions(**{**READY.__dict__, "adapter": True}), forced=False) == "both"
    assert parts_for(READY, forced=False) == "model"  # train.adapter is false


def test_enough_picks_start_a_run_without_new_code():
    quiet = Conditions(**{**READY.__dict__, "new_chunks": 0, "adapter": True})
    assert "0 results were picked" in why_not(quiet)
    assert why_not(Conditions(**{**quiet.__dict__, "new_picks": MIN_NEW_PICKS})) is None


def test_the_schedule_counts_from_the_last_run():
    assert next_due(None, 3600.0) == 0.0  # never trained: due now
    assert next_due(1000.0, 3600.0) == 4600.0
    assert next_due(1000.0, None) is None  # schedule off


@pytest.mark.parametrize(
    ("schedule", "seconds"), [("off", None), ("hourly", 3600.0), ("daily", 86400.0), ("90", 5400.0)]
)
def test_schedule_settings_become_intervals(schedule, seconds):
    assert TrainSettings(schedule=schedule).interval_s == seconds


def test_training_hyper_parameters_are_settings_with_checked_values(tmp_path):
    settings = load_settings(tmp_path, cli={"train": {"lr": "1e-4", "epochs": 3}}, environ={})
    assert settings.train.lr == 1e-4 and settings.train.epochs == 3
    with pytest.raises(SettingsError, match="'train.lr' must be between 0 and 1"):
        load_settings(tmp_path, cli={"train": {"lr": 5}}, environ={})
    with pytest.raises(SettingsError, match="'train.epochs' must be positive"):
        load_settings(tmp_path, cli={"train.epochs": 0}, environ={})
