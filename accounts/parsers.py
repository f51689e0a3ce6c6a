"""The app's JSON parser: DRF's, refusing up front (400 or 413) what would otherwise crash later."""

import io
import json

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from .http_errors import RequestTooLarge


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with three limits it lacks.

    - A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is 413 (DRF reads the stream itself, so Django's
      own limit applies only when something read ``request.body`` first; the handler maps that
      one to 413 too).
    - Nesting deeper than Python's recursion limit is 400: ``json.loads`` raises RecursionError,
      which DRF does not catch.
    - A string holding a lone surrogate (``"\\ud800"``, valid JSON escapes but not Unicode) is 400:
      it cannot be encoded for the database, a hash or a log line.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError as e:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from e
        except UnicodeEncodeError as e:
            raise exceptions.ParseError("JSON parse error - invalid Unicode (a lone surrogate).") from e
        return data
