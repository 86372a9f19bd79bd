"""New ids: UUIDv7 that carry their text, and behave as any uuid.UUID everywhere else."""

from __future__ import annotations

import copy
import pickle
import uuid

from pydantic import BaseModel

from hub.ids import new_id


def test_a_new_id_is_a_version_7_uuid_equal_to_its_parsed_text():
    made = new_id()
    parsed = uuid.UUID(str(made))
    assert isinstance(made, uuid.UUID) and made.version == 7
    assert made == parsed and parsed == made and hash(made) == hash(parsed)
    assert (str(made), made.hex, repr(made)) == (str(parsed), parsed.hex, repr(parsed))
    assert {made: 1}[parsed] == 1


def test_ids_are_ordered_by_creation_as_values_and_as_text():
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_copies_and_pickles_are_plain_uuids():
    made = new_id()
    for twin in (copy.copy(made), copy.deepcopy(made), pickle.loads(pickle.dumps(made))):
        assert type(twin) is uuid.UUID and twin == made and str(twin) == str(made)


def test_pydantic_stores_and_dumps_it_as_a_uuid():
    class Row(BaseModel):
        id: uuid.UUID

    made = new_id()
    row = Row(id=made)
    assert row.model_dump_json() == f'{{"id":"{made}"}}'
    assert Row.model_validate_json(row.model_dump_json()).id == made
