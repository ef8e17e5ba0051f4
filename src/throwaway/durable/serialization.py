"""How checkpoints are written: plain JSON, readable by anyone with the database."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

from dbos import Serializer

# An exception DBOS records for a failed step cannot be JSON; it is pickled
# behind this marker, which no JSON document can start with.
_PICKLED = "!pickle:"


class JsonSerializer(Serializer):
    """DBOS serializer that stores workflow inputs, outputs and step outputs as JSON.

    Our steps return plain JSON data by contract, so their checkpoints are JSON
    text a person (or `throwaway show`) can read straight from the database.
    Anything JSON cannot hold (in practice only the exceptions DBOS records for
    failed steps) falls back to pickle behind a marker.
    """

    def serialize(self, data: Any) -> str:
        try:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            return _PICKLED + base64.b64encode(pickle.dumps(data)).decode()

    def deserialize(self, serialized_data: str) -> Any:
        if serialized_data.startswith(_PICKLED):
            return pickle.loads(base64.b64decode(serialized_data[len(_PICKLED):]))
        return json.loads(serialized_data)

    def name(self) -> str:
        return "throwaway_json"
