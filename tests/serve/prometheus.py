"""A real Prometheus server for tests: Debian's `prometheus` binary on 127.0.0.1, scraping given
targets, answering PromQL over its HTTP API.

    with PrometheusServer.start(tmp_path, {"gateway": ["127.0.0.1:8080"]}) as prom:
        prom.wait_for_targets()                       # every target scraped and up
        prom.wait_for_series("toolorch_requests_total")
        prom.query('sum by (code) (toolorch_requests_total)')   # [{"metric": {...}, "value": [t, "3"]}]

scripts/install.sh installs the binary. The server keeps its data in `workdir` and is killed on
stop() (or at exit, if a test dies first).
"""
from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from vllm_server import free_port, log_tail

POLL_S = 0.25


class PrometheusError(RuntimeError):
    """Prometheus answered a query or API call with an error."""


def write_config(path: Path, targets: dict[str, list[str]], scrape_interval: str,
                 rule_files: list[Path], target_labels: dict[str, str]) -> None:
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts, "labels": target_labels}]}
                           for job, hosts in targets.items()],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class PrometheusServer:
    process: subprocess.Popen
    port: int
    expected_targets: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, targets: dict[str, list[str]], scrape_interval: str = "1s",
              rule_files: list[Path] = (), target_labels: dict[str, str] | None = None,
              deadline_s: float = 30.0) -> PrometheusServer:
        """`target_labels` go on every target, as a ServiceMonitor adds `namespace` in a cluster."""
        binary = shutil.which("prometheus")
        if not binary:
            raise RuntimeError("prometheus is missing: scripts/install.sh installs Debian's prometheus package")
        workdir.mkdir(parents=True, exist_ok=True)
        config, port, log_path = workdir / "prometheus.yml", free_port(), workdir / "prometheus.log"
        write_config(config, targets, scrape_interval, list(rule_files), target_labels or {})
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        server = cls(process, port, sum(len(hosts) for hosts in targets.values()), log_path)
        atexit.register(server.stop)
        try:
            server._wait(lambda: server._get("/-/ready") is not None, deadline_s, "ready")
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str) -> bytes | None:
        """The body of GET `path`, or None while the server does not answer yet."""
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{log_tail(self.log_path)}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            if path.startswith("/api/"):
                return body  # the API explains its errors in the JSON body
            return None if e.code == 503 else body
        except (urllib.error.URLError, ConnectionError):
            return None

    def api(self, path: str, **params: str) -> object:
        """`data` of an /api/v1 answer; PrometheusError with Prometheus's own message otherwise."""
        raw = self._get(f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        if raw is None:
            raise PrometheusError(f"no answer from {self.url} for /api/v1/{path}")
        answer = json.loads(raw)
        if answer.get("status") != "success":
            raise PrometheusError(f"/api/v1/{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's vector (or [] when nothing matches)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} gives a {data['resultType']}, not a vector")
        return data["result"]

    def targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_targets(self, deadline_s: float = 30.0) -> list[dict]:
        """Every configured target discovered and scraped successfully at least once."""
        def all_up() -> bool:
            found = self.targets()
            return len(found) == self.expected_targets and all(t["health"] == "up" for t in found)
        try:
            self._wait(all_up, deadline_s, "targets up")
        except TimeoutError as e:
            states = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets()]
            raise TimeoutError(f"{e}; targets: {states}") from None
        return self.targets()

    def wait_for_series(self, expr: str, deadline_s: float = 30.0) -> list[dict]:
        self._wait(lambda: bool(self.query(expr)), deadline_s, f"series for {expr!r}")
        return self.query(expr)

    def _wait(self, done, deadline_s: float, what: str) -> None:
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if done():
                return
            time.sleep(POLL_S)
        raise TimeoutError(f"prometheus at {self.url}: no {what} after {deadline_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
