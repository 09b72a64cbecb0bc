"""Tools a team plugs in through the catalog file: its own HTTP functions, an MCP server, document
search over a folder, a world's SQL tools; and catalog mistakes named by file, line and field."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
from scripted import scripted_engine, tool_call
from fake_openai import FakeOpenAI
from gateway_server import GatewayServer

from toolorch.serve.catalog_file import CatalogError, load_catalog_file
from toolorch.serve.gateway import Settings

HERE = Path(__file__).parent


class WeatherFunction:
    """The team's own function: POST {"city"} -> JSON; records the request ids it saw."""

    def __init__(self):
        seen = self.request_ids = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                args = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append(self.headers.get("x-request-id"))
                data = json.dumps({"city": args["city"], "forecast": "sunny", "celsius": 21}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/weather"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def catalog(tmp_path: Path, expert_url: str, tools: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(f"experts:\n  - {{name: mini, base_url: '{expert_url}', price: mini, latency_s: 2}}\n"
                    f"episode: {{max_turns: 6}}\ntools:\n{tools}")
    return path


def run_plan(tmp_path, tools_yaml: str, *turns: str, question="q") -> tuple[dict, list[dict]]:
    with FakeOpenAI(scripted_engine(*turns)) as eng, FakeOpenAI(lambda b: "Answer: 4") as exp:
        served = load_catalog_file(catalog(tmp_path, exp.url, tools_yaml))
        with GatewayServer(Settings(served=served, orchestrators=[("default", f"openai:{eng.url}#o")])) as gw:
            body = httpx2.post(gw.url + "/chat/completions", timeout=60, headers={"x-request-id": "tools-1"}, json={
                "model": "toolorch", "messages": [{"role": "user", "content": question}], "include_trace": True})
        return body.json(), eng.requests


def test_http_function_tool(tmp_path):
    with WeatherFunction() as fn:
        tools = (f"  code: false\n  http:\n    - name: weather\n      url: '{fn.url}'\n"
                 "      description: Today's forecast for a city.\n      cost_usd: 0.0002\n"
                 "      parameters: {type: object, properties: {city: {type: string}}, required: [city]}\n")
        body, sent = run_plan(tmp_path, tools, tool_call("weather", city="Oslo"), "<answer>$obs</answer>")
    assert json.loads(body["choices"][0]["message"]["content"]) == {"city": "Oslo", "forecast": "sunny",
                                                                     "celsius": 21}
    assert fn.request_ids == ["tools-1"]
    step = body["toolorch"]["trace"]["steps"][1]
    assert step["kind"] == "http" and step["tool"] == "weather" and step["cost_usd"] == 0.0002
    assert "- weather(city: string): Today's forecast for a city. [$0.0002/call]" in sent[0]["messages"][0]["content"]


def test_mcp_server_tools(tmp_path):
    tools = f"  code: false\n  mcp:\n    - {{name: calc, command: ['{sys.executable}', '{HERE / 'mcp_calc_server.py'}']}}\n"
    body, sent = run_plan(tmp_path, tools, tool_call("add", a=2, b=40), tool_call("fail", reason="test"),
                          "<answer>$obs</answer>")
    steps = body["toolorch"]["trace"]["steps"]
    assert [s["kind"] for s in steps] == ["orchestrator", "mcp", "orchestrator", "mcp", "orchestrator"]
    assert steps[1]["status"] == "ok" and steps[3]["status"] == "error"
    assert sent[1]["messages"][-1] == {"role": "tool", "content": "42"}  # the engine gets the result as training renders it
    assert "failed on purpose: test" in body["choices"][0]["message"]["content"]
    assert "- add(a: integer, b: integer): Add two integers." in sent[0]["messages"][0]["content"]


def test_document_search_over_a_folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns_policy.md").write_text("Returns are accepted within 30 days with a receipt.")
    (docs / "shipping.txt").write_text("Standard shipping takes five working days.")
    body, sent = run_plan(tmp_path, "  code: false\n  documents: docs\n",
                          tool_call("search", query="returns receipt"), "<answer>$obs</answer>")
    answer = body["choices"][0]["message"]["content"]
    assert answer.startswith("[returns_policy.md] returns policy") and "30 days" in answer
    assert "Search the supplied documents" in sent[0]["messages"][0]["content"]


def test_world_sql_tools(tmp_path, library_env):
    body, _ = run_plan(tmp_path, f"  code: false\n  world: '{library_env.db_path.parent}'\n",
                       tool_call("book_author_id", title="Engines"), tool_call("author_name", author_id="$obs"),
                       "<answer>$obs</answer>")
    assert body["choices"][0]["message"]["content"] == "Ada Byron"
    assert body["toolorch"]["trace"]["steps"][1]["kind"] == "db"
    assert body["toolorch"]["trace"]["steps"][1]["status"] == "ok"


@pytest.mark.parametrize("text,needle", [
    ("experts:\n  - {name: mini, price: mini}\n", "catalog.yaml:2: experts.0: base_url: an OpenAI-compatible"),
    ("experts:\n  - name: mini\n    base_url: http://x\n    price: mini\n    prise: 3\n",
     "catalog.yaml:5: experts.0.prise: Extra inputs are not permitted"),
    ("experts:\n  - {name: mini, base_url: 'http://x', price: cheapest}\n", "no price 'cheapest'"),
    ("tools:\n  world: a\n  documents: b\n", "catalog.yaml:2: tools: give world or documents"),
    ("tools:\n  mcp:\n    - {name: m}\n", "catalog.yaml:3: tools.mcp.0: give exactly one of command"),
])
def test_catalog_mistakes_name_file_line_and_field(tmp_path, text, needle):
    (tmp_path / "catalog.yaml").write_text(text)
    with pytest.raises(CatalogError) as e:
        load_catalog_file(tmp_path / "catalog.yaml")
    assert needle in str(e.value)


def test_mcp_server_over_streamable_http(tmp_path):
    import socket
    import subprocess
    import time

    from vllm_server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "mcp_calc_server.py"), "streamable-http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "MCP server did not start"
            time.sleep(0.1)
        tools = f"  code: false\n  mcp:\n    - {{name: calc, url: 'http://127.0.0.1:{port}/mcp', prefix: calc_}}\n"
        body, sent = run_plan(tmp_path, tools, tool_call("calc_add", a=1, b=2), "<answer>$obs</answer>")
    finally:
        proc.terminate()
        proc.wait(10)
    assert body["choices"][0]["message"]["content"] == "3"
    assert "- calc_add(a: integer, b: integer)" in sent[0]["messages"][0]["content"]


def test_example_catalog_loads():
    served = load_catalog_file(HERE.parents[1] / "configs/serve/catalog.example.yaml")
    assert served.catalog.names() == ["frontier", "mini"]
    assert served.catalog.expert("mini").price.output == 2.0 and served.catalog.expert("frontier").latency_prior_s == 20
    assert served.limits.max_turns == 8 and served.tools.code
