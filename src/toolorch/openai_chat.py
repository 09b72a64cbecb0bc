"""One chat completion against an OpenAI-compatible endpoint, with bounded retries and backoff."""
from __future__ import annotations

import time
from typing import Any


class EndpointError(RuntimeError):
    """The endpoint could not answer: unreachable after retries, or it refused the request."""


def make_client(base_url: str, api_key: str, timeout_s: float) -> Any:
    import openai

    # Retries are ours (bounded, logged in the error), not the client's.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)


def complete(client: Any, *, attempts: int, backoff_s: float = 0.5, **request: Any) -> Any:
    import openai

    retryable = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                 openai.InternalServerError)
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return client.chat.completions.create(**request)
        except retryable as e:
            last = e
            if attempt + 1 < attempts:
                time.sleep(backoff_s * 2**attempt)
        except openai.OpenAIError as e:  # 4xx: retrying cannot help
            raise EndpointError(f"{client.base_url} refused the request: {e}") from None
    raise EndpointError(
        f"{client.base_url} unreachable after {attempts} attempts: {last.__class__.__name__}: {last}"
    )
