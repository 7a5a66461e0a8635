"""Every error the server answers, as one JSON shape: {"error": {"status", "message", "field"?, "limit"?}}."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from llmcls.errors import ConfigError

CLIENT_GONE = 499  # the status under which a request whose client left is counted (never sent: nobody reads it)
RETRY_AFTER_S = 1  # what a 503 tells a client to wait before trying again (Retry-After)
INTERNAL_ERROR = "internal error (the server's log has the details)"  # never the exception's own text
# pydantic's error types, said in the words of this API
MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "json_invalid": "malformed JSON",
    "too_short": "must not be empty",
}


class RequestRefused(Exception):
    """A request the server will not answer: `status` (400, 401, 408, 413, 422, 503, 504), a one-line message,
    and what was at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        limit: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.field, self.limit, self.headers = status, message, field, limit, headers


def error_body(status: int, message: str, *, field: str | None = None, limit: str | None = None) -> dict:
    """The one error shape: {"error": {"status", "message", "field"?, "limit"?}}."""
    body: dict[str, Any] = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    if limit is not None:
        body["limit"] = limit
    return {"error": body}


def error_response(
    status: int,
    message: str,
    *,
    field: str | None = None,
    limit: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, field=field, limit=limit), status_code=status, headers=headers)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(field, one-line message) of pydantic's first error, e.g. ("texts.2", "texts.2: Input should be a valid
    string"); the field is dotted, without FastAPI's leading "body"."""
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(loc) or "body"
    kind = first.get("type", "")
    message = MESSAGES.get(kind, first.get("msg", "invalid"))
    if kind == "json_invalid":
        message = f"malformed JSON ({first.get('ctx', {}).get('error', 'cannot be parsed')})"
        field = "body"
    elif field == "body" and kind in ("model_attributes_type", "dict_type"):  # also: a body not sent as JSON
        message = 'expected a JSON object such as {"texts": ["..."]}, sent as Content-Type: application/json'
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return field, f"{field}: {message}{more}"


def install_error_handlers(app: FastAPI) -> None:
    """Answer refused, invalid and failed requests with the one error shape."""

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        return error_response(exc.status, exc.message, field=exc.field, limit=exc.limit, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = validation_message(exc.errors())
        return error_response(422, message, field=field)

    @app.exception_handler(ConfigError)
    async def bad_option(request: Request, exc: ConfigError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, INTERNAL_ERROR)
