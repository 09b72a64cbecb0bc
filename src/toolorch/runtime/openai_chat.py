"""One chat completion against an OpenAI-compatible endpoint, with bounded retries and backoff.

    resp = complete(make_client(url, key, timeout_s=60), attempts=3, model="m", messages=[...])
    resp = complete(client, attempts=3, gate=endpoint_gate(url, 8, 20), ...)   # bounded per endpoint
    text = reply_text(resp)   # the message's text, valid Unicode whatever the server sent
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from toolorch.runtime.endpoint_gate import EndpointGate


class EndpointError(RuntimeError):
    """The endpoint could not answer: unreachable after retries, or it refused the request."""


def make_client(base_url: str, api_key: str, timeout_s: float) -> Any:
    import openai

    # Retries are ours (bounded, logged in the error), not the client's.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)


def checked(resp: Any, url: object) -> Any:
    """The response, if it holds a message to read; the client does not validate the shape."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise EndpointError(f"{url} answered without a chat completion message: {str(resp)[:200]}")
    return resp


def valid_unicode(text: str) -> str:
    """`text` with each unpaired surrogate replaced by U+FFFD (a pair of halves becomes its character).

    JSON may carry a lone surrogate as an escape ("\\ud800"); decoded, it is a str that no UTF-8
    encoder accepts, so a chat holding it could be neither sent again nor saved.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def reply_text(resp: Any) -> str:
    """The first choice's message text ("" when it has none), as valid Unicode."""
    return valid_unicode(resp.choices[0].message.content or "") if resp.choices else ""


def complete(client: Any, *, attempts: int, backoff_s: float = 0.5, gate: EndpointGate | None = None,
             **request: Any) -> Any:
    """The completion, retried with backoff; each attempt passes `gate` (not the sleeps between)."""
    import openai

    retryable = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                 openai.InternalServerError)
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            with gate or nullcontext():
                resp = client.chat.completions.create(**request)
            return checked(resp, client.base_url)
        except UnicodeEncodeError as e:  # our request, before anything was sent (a ValueError too)
            bad = e.object[e.start:e.end] if isinstance(e.object, str) else "?"
            raise EndpointError(f"the request to {client.base_url} cannot be encoded as UTF-8: it holds {bad!r} "
                                f"({e.reason}); nothing was sent") from None
        except ValueError as e:  # a 200 whose body is not JSON (e.g. a proxy's HTML page)
            raise EndpointError(f"{client.base_url} answered with a body that is not JSON: {e}") from None
        except retryable as e:
            last = e
            if attempt + 1 < attempts:
                time.sleep(backoff_s * 2**attempt)
        except openai.OpenAIError as e:  # 4xx: retrying cannot help
            raise EndpointError(f"{client.base_url} refused the request: {e}") from None
    raise EndpointError(
        f"{client.base_url} unreachable after {attempts} attempts: {last.__class__.__name__}: {last}"
    )
