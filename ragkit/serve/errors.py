"""Every error the server returns is one line of JSON in OpenAI's shape, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragkit.errors import RagkitError, first_line

log = logging.getLogger("ragkit.serve")


class ApiError(Exception):
    """A request the server refuses: an HTTP status and a one-line message."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers


def error_response(error: ApiError) -> JSONResponse:
    """An `ApiError` as OpenAI's error body ({"error": {message, type, param, code}}) with its status."""
    body = {"error": {"message": error.message, "type": error.kind, "param": None, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def add_error_handlers(app: FastAPI) -> None:
    """Refusals, library errors (400), invalid bodies (400, naming the field) and crashes (500)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return error_response(error)

    @app.exception_handler(RagkitError)
    async def ragkit_error(request: Request, error: RagkitError):
        return error_response(ApiError(400, first_line(error)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
        return error_response(ApiError(400, f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        detail = str(error.detail)
        if detail == "There was an error parsing the body":  # FastAPI's words for any JSON failure
            detail = (
                "the body could not be parsed as JSON (malformed, or nested too deep); send a JSON object"
            )
        return error_response(ApiError(error.status_code, detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        log.exception("request to %s failed", request.url.path)
        return error_response(
            ApiError(500, f"internal error ({type(error).__name__}): {first_line(error)}", "server_error")
        )
