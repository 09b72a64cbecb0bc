"""The documented submission command works: the real kfp CLI, run as README and pipelines/README
write it, against a local fake of the KFP API (tests/pipelines/fake_kfp_api.py), delivers the
compiled pipeline and every `key=value` parameter with its type; the forms the docs used to give
fail, as they do against a cluster."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_kfp_api import FakeKfpApi

ROOT = Path(__file__).resolve().parents[2]
KFP = str(Path(sys.executable).parent / "kfp")
DOCS = [ROOT / "README.md", ROOT / "pipelines" / "README.md"]
SUBMIT = re.compile(r"^\s*(kfp --endpoint \S+ run create .*?)(?:\s+#.*)?$", re.M)


def documented_commands() -> list[str]:
    return [m.group(1) for doc in DOCS for m in SUBMIT.finditer(doc.read_text())]


def sent_pipeline(run: dict) -> dict:
    """The pipeline spec a run carries (with a platform spec beside it, both are wrapped)."""
    spec = run["pipeline_spec"]
    return spec.get("pipeline_spec", spec)


def kfp(api: FakeKfpApi, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([KFP, "--endpoint", api.url, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_docs_give_the_submission_command():
    commands = documented_commands()
    assert len(commands) >= 2 and any("profile=paper" in c for c in commands), commands
    old_forms = re.compile(r"^\s*kfp (run (submit|pipelines/)|.*--experiment\b|.* -p \w+=)", re.M)
    for doc in DOCS:  # the forms that fail against kfp 2.x
        assert not old_forms.search(doc.read_text()), doc


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_delivers_its_parameters(command):
    argv = shlex.split(command)
    argv = argv[argv.index("run"):]  # the documented endpoint is a cluster's; the fake stands in for it
    with FakeKfpApi() as api:
        done = kfp(api, argv)
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = api.runs
    experiment = argv[argv.index("-e") + 1]
    assert [e["display_name"] for e in api.experiments] == [experiment]
    assert run["experiment_id"] == api.experiments[0]["experiment_id"]
    given = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    sent = run["runtime_config"]["parameters"]
    assert set(sent) == set(given)
    assert all(str(sent[k]) == v for k, v in given.items()), (sent, given)
    declared = sent_pipeline(run)["root"]["inputDefinitions"]["parameters"]
    assert set(sent) <= set(declared), "a parameter the pipeline does not declare"


def test_typed_parameters_and_the_compiled_spec_arrive():
    with FakeKfpApi() as api:
        done = kfp(api, ["run", "create", "-e", "toolorch", "-f", "pipelines/full.yaml", "profile=paper", "k=8",
                         "group_size=8", "namespace=kubeflow-user-example-com", "preflight_timeout_s=5.5"])
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = api.runs
    assert run["runtime_config"]["parameters"] == {"profile": "paper", "k": 8, "group_size": 8,
                                                   "namespace": "kubeflow-user-example-com",
                                                   "preflight_timeout_s": 5.5}
    compiled = next(yaml.safe_load_all((ROOT / "pipelines" / "full.yaml").read_text()))
    assert sent_pipeline(run)["root"] == compiled["root"]
    assert "toolorch-expert-keys" in json.dumps(run["pipeline_spec"]["platform_spec"])  # the Secrets travel with it
    assert ("POST", "/apis/v2beta1/runs") in api.requests


@pytest.mark.parametrize("argv,error", [
    (["run", "submit", "pipelines/full.yaml"], "Missing option '-e'"),
    (["run", "create", "--experiment", "toolorch", "--package-file", "pipelines/full.yaml"], "No such option"),
])
def test_the_old_forms_fail(argv, error):
    with FakeKfpApi() as api:
        done = kfp(api, argv)
    assert done.returncode != 0 and error in done.stderr, done.stderr
    assert not api.runs
