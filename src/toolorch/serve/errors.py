"""Errors in OpenAI's wire format: {"error": {"message", "type", "param", "code"}}, code a string.

    raise ApiError(400, "max_cost_usd: must be > 0", code="invalid_value", param="max_cost_usd")
    ApiError.from_upstream(502, raw_body_bytes, "expert 'mini'")   # vLLM's integer codes, HTML pages
"""
from __future__ import annotations

import json
from typing import Any

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 502: "server_error", 503: "server_error",
         504: "server_error"}


class ApiError(Exception):
    """An HTTP error the gateway answers; `retry_after_s` adds a Retry-After header."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 retry_after_s: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


def upstream_message(raw: bytes | str, limit: int = 300) -> tuple[str, str | None]:
    """(message, code) out of an upstream error body, whatever its shape: OpenAI's, vLLM's
    (integer code), a flat {"object": "error"}, {"error": "text"}, or no JSON at all."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except ValueError:
        return (text.strip()[:limit] or "empty body"), None
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, str):
        return err[:limit], None
    if not isinstance(err, dict):
        return str(err)[:limit], None
    code = err.get("code")
    return str(err.get("message") or err.get("detail") or err)[:limit], (None if code is None else str(code))
