"""The API's request parser. Its own module: DRF resolves DEFAULT_PARSER_CLASSES while
rest_framework.views is still loading, so this must not import that (infra.api does)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class LimitedJSONParser(JSONParser):
    """JSON with a hard size cap. DRF reads the raw stream, which skips Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE check, so the cap is applied here (also to chunked bodies)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise exceptions.ValidationError({"body": [too_large()]})
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(str(exc)) from exc
        except RecursionError as exc:  # "[[[[...": a 400, not a 500
            raise exceptions.ParseError("nested too deeply") from exc


def too_large() -> str:
    return f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
