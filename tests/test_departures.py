"""Departures from the thesis's hyperparameter tables, with its "-" settings that never act."""

from ddubench.report import paper
from ddubench.report.departures import departs, departures

NEVER = ("min_epochs", "early_stopping_patience", "lr_patience")


def test_a_dash_setting_that_still_never_acts_is_no_departure() -> None:
    training = {**paper.THESIS_TABLE7_7, "max_epochs": 1, "min_epochs": 1, "early_stopping_patience": 1,
                "lr_patience": 3, "batch_size": 4}
    assert departures(training, paper.THESIS_TABLE7_7, NEVER) == ["max_epochs 1 (thesis 40)",
                                                                   "batch_size 4 (thesis 16)"]
    assert not departs(training, "lr_patience", 40, NEVER) and departs(training, "lr_patience", 40, ())


def test_a_dash_setting_that_acts_within_the_epochs_departs() -> None:
    training = {**paper.THESIS_TABLE7_10, "early_stopping_patience": 10}
    assert departures(training, paper.THESIS_TABLE7_10, ("min_epochs", "early_stopping_patience")) == [
        "early_stopping_patience 10 (thesis 50)"]
