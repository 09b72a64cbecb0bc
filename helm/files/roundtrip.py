"""`helm test`: one orchestration round trip through the toolorch gateway, with the standard
library only so that it runs in any Python image.

    GATEWAY_URL=http://127.0.0.1:8080 QUESTION="What is 2 + 3?" TIMEOUT_S=600 python3 roundtrip.py

Lists /v1/models (retried while the gateway comes up), asks QUESTION of the first model in the
OpenAI chat completions shape, and fails unless an answer and a consistent `usage` come back.
API_KEY, when set, goes in the Authorization header and is never printed.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

LIST_ATTEMPTS = 5


def fail(message):
    print(f"roundtrip FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def call(path, body=None, timeout=30.0):
    headers = {"Content-Type": "application/json"}
    if os.environ.get("API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["API_KEY"]
    data = None if body is None else json.dumps(body).encode()
    url = os.environ["GATEWAY_URL"].rstrip("/") + path
    request = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        fail(f"{path} answered HTTP {e.code}: {e.read()[:500].decode(errors='replace')}")
    except ValueError as e:
        fail(f"{path} answered something that is not JSON: {e}")


def first_model():
    for attempt in range(LIST_ATTEMPTS):
        try:
            models = call("/v1/models").get("data") or []
            break
        except (urllib.error.URLError, OSError) as e:  # not listening yet
            if attempt == LIST_ATTEMPTS - 1:
                fail(f"{os.environ['GATEWAY_URL']} unreachable after {LIST_ATTEMPTS} tries: {e}")
            time.sleep(2 ** attempt)
    if not models:
        fail("/v1/models lists no model")
    return models[0]["id"]


def check(reply):
    choices = reply.get("choices") or []
    if not choices:
        fail(f"no choices in the reply: {json.dumps(reply)[:500]}")
    answer = (choices[0].get("message") or {}).get("content")
    if not isinstance(answer, str) or not answer.strip():
        fail(f"no answer text in choices[0].message: {json.dumps(choices[0])[:500]}")
    usage = reply.get("usage") or {}
    counts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    if not all(isinstance(c, int) and c >= 0 for c in counts):
        fail(f"usage lacks token counts: {usage}")
    if counts[2] != counts[0] + counts[1] or counts[2] == 0:
        fail(f"usage does not add up: {usage}")
    return answer, usage


def main():
    model = first_model()
    question = os.environ.get("QUESTION", "What is 2 + 3? Reply with the number.")
    timeout = float(os.environ.get("TIMEOUT_S", "600"))
    started = time.monotonic()
    reply = call("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": question}]},
                 timeout=timeout)
    answer, usage = check(reply)
    print(json.dumps({"ok": True, "model": model, "seconds": round(time.monotonic() - started, 2),
                      "finish_reason": reply["choices"][0].get("finish_reason"), "answer": answer[:200],
                      "usage": usage}))


if __name__ == "__main__":
    main()
