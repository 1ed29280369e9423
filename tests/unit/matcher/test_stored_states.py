"""Reading the matcher's stored states (worker.py's `_Keys`, over a dict standing for the table)."""

from typing import Any, cast

import msgspec
import pytest

from services.matcher.state import Facts, PersonState
from services.matcher.worker import UnreadableStateError, _Keys
from tests.synthetic import citizen_id


class _Table:
    """The part of a Faust table `_Keys.get` reads: its store."""

    def __init__(self, stored: dict[bytes, bytes]) -> None:
        self.data = stored


def _keys(stored: dict[bytes, bytes]) -> _Keys[PersonState]:
    return _Keys(cast(Any, _Table(stored)), PersonState, 3)


def test_a_stored_state_is_read_back() -> None:
    person = citizen_id(1)
    state = PersonState(facts=Facts(welfare="verified", welfare_order=(1.5e9, 2560)))
    keys = _keys({person.encode(): msgspec.json.encode(state)})
    assert keys.get(person) == state
    assert keys.get(citizen_id(2)) == PersonState()


def test_an_unreadable_state_fails_the_batch_and_keeps_the_citizen_id_out_of_the_error() -> None:
    person = citizen_id(1)
    # A state of the pydantic era: each sent status in full, not a `Sent`.
    legacy = (
        b'{"facts": {}, "memberships": {}, "sent": {"2561": {"citizen_id": "x", "version": 2}}}'
    )
    keys = _keys({person.encode(): legacy})
    with pytest.raises(UnreadableStateError, match="PersonState in partition 3") as raised:
        keys.get(person)
    # Not a ValueError: the transitions turn those into dead letters of the input.
    assert not isinstance(raised.value, ValueError)
    assert person not in str(raised.value)
