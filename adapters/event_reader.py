"""Read stored events for projections in batches, decoded with msgspec instead of `json`.

Gives exactly the domain event objects eventsourcing's `Mapper.to_domain_event` gives (the same
class, the same `__dict__`), about three times faster: msgspec parses the JSON in C, and only the
values the transcoder tagged (`{"_type_": ..., "_data_": ...}`) are revived in Python. Anything
unusual (another transcoder, an upcast class version, an unknown tag) goes through the mapper.
On PostgreSQL the rows come straight from the events table as tuples in binary format, one
query per batch, through the application's own connection pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import Application
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Tracking,
    UUIDAsHex,
    find_id_convertor,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

#: (notification id, originator id, originator version, topic, state)
Row = tuple[int, Any, int, str, bytes]


class _NotRevivable(Exception):
    """A tagged value this reader does not revive itself; the mapper decodes the event."""


class FastEventDecoder:
    """Stored events to domain events, equal to what the application's mapper returns."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self._mapper = mapper
        transcoder = mapper.transcoder
        self._names = transcoder.names if isinstance(transcoder, JSONTranscoder) else None
        names = self._names or {}
        # the two tags of nearly every event are revived inline when they are the library's
        self._fast_tags = (
            type(names.get("datetime_iso")) is DatetimeAsISO
            and type(names.get("uuid_hex")) is UUIDAsHex
        )
        self._json = msgspec.json.Decoder()
        self._classes: dict[str, tuple[type[Any], bool]] = {}
        self._ids: dict[tuple[type[Any], type[Any]], Callable[[Any], Any]] = {}

    def decode(self, originator_id: Any, version: int, topic: str, state: bytes) -> Any:
        found = self._classes.get(topic)
        if found is None:
            cls = resolve_topic(topic)
            found = self._classes[topic] = (cls, getattr(cls, "class_version", 1) == 1)
        cls, plain = found
        if not plain or self._names is None:
            return self._slow(originator_id, version, topic, state)
        mapper = self._mapper
        plain_state = state
        if mapper.cipher is not None:
            plain_state = mapper.cipher.decrypt(plain_state)
        if mapper.compressor is not None:
            plain_state = mapper.compressor.decompress(plain_state)
        try:
            event_state = self._revive_dict(self._json.decode(plain_state))
        except (_NotRevivable, msgspec.MsgspecError):
            return self._slow(originator_id, version, topic, state)
        if type(event_state) is not dict or "class_version" in event_state:
            return self._slow(originator_id, version, topic, state)
        key = (cls, type(originator_id))
        convert = self._ids.get(key)
        if convert is None:
            convert = self._ids[key] = find_id_convertor(cls, type(originator_id))  # type: ignore[arg-type]
        event_state["originator_id"] = convert(originator_id)
        event_state["originator_version"] = version
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", event_state)
        return domain_event

    def _slow(self, originator_id: Any, version: int, topic: str, state: bytes) -> Any:
        return self._mapper.to_domain_event(StoredEvent(originator_id, version, topic, state))

    def _revive_dict(self, value: dict[str, Any]) -> Any:
        """What `json`'s object_hook in the transcoder does: inner objects first, then a
        two-key `{"_type_", "_data_"}` object becomes the value its transcoding decodes."""
        fast = self._fast_tags
        for key, item in value.items():
            kind = type(item)
            if kind is dict:
                # the common tagged values inline, without a call per value
                if fast and len(item) == 2 and type(data := item.get("_data_")) is str:
                    name = item.get("_type_")
                    try:
                        if name == "datetime_iso":
                            value[key] = datetime.fromisoformat(data)
                            continue
                        if name == "uuid_hex":
                            value[key] = UUID(data)
                            continue
                    except ValueError:  # the mapper reports it properly
                        raise _NotRevivable(name) from None
                value[key] = self._revive_dict(item)
            elif kind is list:
                self._revive_list(item)
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            name, data = value["_type_"], value["_data_"]
            names = self._names
            if names is None or type(name) is not str or name not in names:
                raise _NotRevivable(name)
            try:
                if fast and type(data) is str:
                    if name == "datetime_iso":
                        return datetime.fromisoformat(data)
                    if name == "uuid_hex":
                        return UUID(data)
                return names[name].decode(data)
            except (AssertionError, TypeError, ValueError):  # the mapper reports it properly
                raise _NotRevivable(name) from None
        return value

    def _revive_list(self, items: list[Any]) -> None:
        for index, item in enumerate(items):
            kind = type(item)
            if kind is dict:
                items[index] = self._revive_dict(item)
            elif kind is list:
                self._revive_list(item)


class FastEventReader:
    """The `EventReader` of projections: batches of decoded events after a position.

    `datetime_iso` and `uuid_hex` are revived here as eventsourcing's transcodings do
    (`datetime.fromisoformat`, `UUID`); other tags use the application's registered ones.
    """

    def __init__(self, app: Application[Any]) -> None:
        self.app = app
        self.decoder = FastEventDecoder(app.mapper)
        recorder = app.recorder
        self._select: Callable[[int, int], Sequence[Row]]
        if isinstance(recorder, PostgresApplicationRecorder):
            self._statement = SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {} WHERE notification_id >= %s ORDER BY notification_id LIMIT %s"
            ).format(Identifier(recorder.datastore.schema, recorder.events_table_name))
            self._select = self._select_postgres
        else:
            self._select = self._select_recorder

    def read(self, *, start: int, limit: int) -> list[tuple[Any, Tracking]]:
        """Up to `limit` events from notification id `start` on, in order, with their
        tracking positions."""
        name = self.app.name
        decode = self.decoder.decode
        return [
            (decode(originator_id, version, topic, state), Tracking(name, notification_id))
            for notification_id, originator_id, version, topic, state in self._select(start, limit)
        ]

    def _select_postgres(self, start: int, limit: int) -> Sequence[Row]:
        recorder = self.app.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        with (
            recorder.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as cursor,
        ):
            cursor.execute(self._statement, (start, limit), prepare=True)
            rows: list[Row] = cursor.fetchall()
            return rows

    def _select_recorder(self, start: int, limit: int) -> Sequence[Row]:
        return [
            (n.id, n.originator_id, n.originator_version, n.topic, n.state)
            for n in self.app.recorder.select_notifications(start=start, limit=limit)
        ]
