"""JSON as RFC 8259 defines it: Python's parser also takes NaN, Infinity and 1e999, which would
reach the engine as non-numbers and compare false with every threshold. They are refused as
malformed JSON (400) instead, in request bodies and in NDJSON lines alike.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute


def _constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"{text} is out of range", text, 0)
    return value


def loads(data: bytes | str) -> Any:
    """`json.loads` without NaN, Infinity or numbers that overflow a float."""
    return json.loads(data, parse_constant=_constant, parse_float=_number)


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed by `loads`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict(request: Request):
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
