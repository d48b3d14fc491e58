"""Strict request bodies: JSON is checked against its Struct exactly as the schema documents it."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, SerializationException, ValidationException

#: msgspec appends the failing location to its message: "Expected `int`, got `str` - at `$.x`".
_AT = " - at `$"


@cache
def _decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type, strict=True)


def _error(error: msgspec.ValidationError) -> dict[str, str]:
    message, _, location = str(error).partition(_AT)
    key = location.rstrip("`").lstrip(".")
    return {"message": message, "key": key or "data", "source": "body"}


async def check_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a body the handler's Struct would only accept by coercion.

    Litestar converts bodies with `strict=False`, which turns `0` into `false` and `"5"` into `5`,
    so a request the schema calls invalid would be accepted. Litestar has read the body (413,
    and 400 for bad JSON, come from there) but converts it only after resolving dependencies.
    """
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    body = await request.body()
    try:
        _decoder(data.annotation).decode(body)
    except msgspec.ValidationError as error:
        problem = _error(error)
        raise ValidationException(detail=problem["message"], extra=[problem]) from None
    except msgspec.DecodeError as error:
        raise ClientException(detail=f"The body is not valid JSON: {error}") from None


class JsonBodyRequest(Request[Any, Any, Any]):
    """A request whose unreadable JSON body is a 400 with a clear detail, never a 500."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except SerializationException as error:
            raise ClientException(detail=f"The body is not valid JSON: {error}") from None
        except RecursionError:
            # msgspec gives up on deep nesting ("[[[[...") with RecursionError, not DecodeError.
            raise ClientException(detail="The body is not valid JSON: nested too deeply.") from None
