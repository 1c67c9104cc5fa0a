"""Every error leaves the API as JSON ``{"code", "message"}``; bad input is never a 5xx."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.api.observability import current_request_id
from facegate.errors import FacegateError

log = logging.getLogger("facegate.api")


class ErrorBody(BaseModel):
    """The one error shape of the API."""

    code: str = Field(description="stable machine-readable code, e.g. `unauthorized`")
    message: str = Field(description="what went wrong and what to do, for a person")
    request_id: str | None = Field(default=None, description="quote it when asking for help")


_DESCRIPTIONS = {
    400: "Bad input (e.g. not an image)",
    401: "Missing or wrong API key",
    403: "The key is valid but out of scope, site or access point",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Upload larger than the limit",
    415: "Unsupported content type",
    422: "Invalid input",
    503: "Busy: retry after the number of seconds in Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` entries for the given statuses, all with the shared schema."""
    out: dict[int | str, dict] = {}
    for s in sorted({*statuses, 400, 422}):
        out[s] = {"model": ErrorBody, "description": _DESCRIPTIONS.get(s, "Error")}
    return out


def _body(code: str, message: str) -> dict[str, object]:
    return {"code": code, "message": message, "request_id": current_request_id()}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacegateError)
    async def _facegate(_: Request, exc: FacegateError) -> JSONResponse:
        headers = {}
        retry = exc.details.get("retry_after") if exc.details else None
        if retry is not None:
            headers["Retry-After"] = str(retry)
        status = exc.http_status if exc.http_status < 500 or exc.http_status == 503 else 500
        if status == 500:
            # A server-side fault (e.g. a model file failing its checksum): say so, leak nothing.
            log.error("server error %s", exc.code)
        return JSONResponse(_body(exc.code, exc.message), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and what, never echo the input back (it could be anything).
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse(_body("invalid_input", "; ".join(parts) or "invalid input"), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code
        return JSONResponse(
            _body(code, message), status_code=exc.status_code, headers=exc.headers or None
        )
