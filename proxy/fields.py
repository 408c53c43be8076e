"""A JSONField that encodes with orjson: the recorder writes ~100 KB of JSON per exchange, and Django's
stdlib encoding of it was the largest single cost of recording (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

import orjson
from django.db import models


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class FastJSONField(models.JSONField):
    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        # orjson.Fragment: JSON already encoded (the client's request body as received) goes in as is.
        if not isinstance(value, (dict, list, str, int, float, bool, orjson.Fragment)):
            return super().get_db_prep_value(value, connection, prepared=True)
        try:
            if connection.vendor == "postgresql":
                from psycopg.types.json import Jsonb

                return Jsonb(value, dumps=_dumps)
            return _dumps(value)
        except TypeError:  # something orjson does not know: Django's encoder decides
            return super().get_db_prep_value(value, connection, prepared=True)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return super().from_db_value(value, expression, connection)


class BodyField(FastJSONField):
    """A recorded request body: large repeated parts may be stored once in the Blob table (recording/blobs.py)
    and are put back here, so every reader of the field sees the whole body."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str):
            from proxy.recording import blobs

            value = blobs.expand(value, connection)
        return super().from_db_value(value, expression, connection)
