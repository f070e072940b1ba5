"""Whether a run's training settings depart from a thesis table of hyperparameters (Tables 7.7 and 7.10).

The thesis prints "-" for early stopping, a minimum stopping epoch or LR decay that never act; the tables hold
those as the epoch count, and any value of ours that still never acts (at least the epoch count) is no departure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _never_acts(training: Mapping[str, Any], key: str) -> bool:
    """Whether the epoch-counting setting ``key`` never acts: it is at least the number of epochs."""
    return training[key] >= training["max_epochs"]


def departs(training: Mapping[str, Any], key: str, published: Any, never: Sequence[str]) -> bool:
    """Whether our ``training[key]`` departs from the thesis's ``published`` value (``never``: its "-" keys)."""
    return training[key] != published and not (key in never and _never_acts(training, key))


def departures(training: Mapping[str, Any], table: Mapping[str, Any], never: Sequence[str]) -> list[str]:
    """Each departure from the thesis's ``table`` as ``"<key> <ours> (thesis <theirs>)"``, in the table's order."""
    return [f"{key} {training[key]} (thesis {value})" for key, value in table.items()
            if departs(training, key, value, never)]
