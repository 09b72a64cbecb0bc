"""helm/: the chart lints and renders with Helm's Go SDK (helm-python-sdk) for the defaults and every
scenario file; every rendered object validates (kubernetes-validate --strict 1.30 for core kinds,
the CRDs' schemas for ServiceMonitor, PrometheusRule and ScaledObject); values.schema.json
refuses typos, wrong enums and mutable checkpoints; no object carries a secret value. No
Kubernetes API server exists here: this is offline validation, not an install."""
from __future__ import annotations

import json
import re

import helm_python
import pytest
import yaml
from chart import (
    CHART_DIR,
    PREFIX,
    SCENARIOS,
    chart,
    containers,
    flags,
    of_kind,
    one,
    pod_spec,
    render,
    scenario_values,
    validate,
)

CASES = {name: scenario_values(name) for name in SCENARIOS}
CASES["keda"] = {"gateway": {"autoscaling": {"keda": {"enabled": True}}}}
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.I)


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(CASES[request.param])


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_is_clean(case):
    report = helm_python.lint(CHART_DIR, CASES[case], strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_every_rendered_object_validates(rendered):
    case, docs = rendered
    assert len(docs) >= 8
    for doc in docs:
        try:
            validate(doc)
        except Exception as e:  # noqa: BLE001 - name the object, then fail
            pytest.fail(f"{case}: {doc['kind']}/{doc['metadata']['name']} does not validate: {e}")


def test_each_scenario_renders_what_it_promises():
    kinds = {case: {d["kind"] for d in render(values)} for case, values in CASES.items()}
    core = {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "Pod"}
    assert core | {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"} <= kinds["values.yaml"]
    assert core <= kinds["values-cpu.yaml"] and not {"HorizontalPodAutoscaler", "ServiceMonitor"} & kinds["values-cpu.yaml"]
    assert "ScaledObject" in kinds["keda"] and "HorizontalPodAutoscaler" not in kinds["keda"]
    paper = render(CASES["values-paper.yaml"])
    names = {d["metadata"]["name"] for d in of_kind(paper, "Deployment")}
    assert names == {f"{PREFIX}-gateway", f"{PREFIX}-engine", f"{PREFIX}-engine-canary", f"{PREFIX}-expert-math-72b",
                     f"{PREFIX}-expert-llama-70b", f"{PREFIX}-expert-coder-32b", f"{PREFIX}-expert-math-7b"}


def test_paper_scale_fits_two_nodes_of_eight_gpus():
    paper = render(CASES["values-paper.yaml"])
    gpus = sum(d["spec"]["replicas"] * int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
               for d in of_kind(paper, "Deployment") if "replicas" in d["spec"] for c in pod_spec(d)["containers"])
    assert 8 < gpus <= 16


@pytest.mark.parametrize("values, where, what", [
    ({"engine": {"vllm": {"maxModelLenn": 4096}}}, "/engine/vllm", "maxModelLenn"),
    ({"gatway": {"replicas": 2}}, "at ''", "gatway"),
    ({"catalog": {"experts": [{"name": "a", "backend": "simulated", "price": {"input": 1, "output": 1},
                               "simulated": {"defaultAccuracy": 0.5, "tokensOutMean": 10, "latencySMean": 1},
                               "timeout": 3}]}},
     "/catalog/experts/0", "timeout"),
])
def test_schema_names_a_misspelled_key(values, where, what):
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema(values)
    assert where in str(err.value) and what in str(err.value)


@pytest.mark.parametrize("values, where", [
    ({"engine": {"vllm": {"dtype": "fp8x"}}}, "/engine/vllm/dtype"),
    ({"engine": {"image": {"pullPolicy": "Sometimes"}}}, "/engine/image/pullPolicy"),
    ({"catalog": {"experts": [{"name": "a", "backend": "anthropic", "price": {"input": 1, "output": 1}}]}},
     "/catalog/experts/0/backend"),
])
def test_schema_names_a_wrong_enum(values, where):
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema(values)
    assert where in str(err.value) and "must be one of" in str(err.value)


@pytest.mark.parametrize("uri", [
    "s3://toolorch-artifacts/models/latest", "s3://toolorch-artifacts/latest/v1", "s3://toolorch-artifacts/models/grpo",
    "s3://toolorch-artifacts/models/v2-latest", "pvc://models/grpo/current", "hf://Qwen/Qwen3-8B@main",
    "hf://Qwen/Qwen3-8B", "https://example.com/models/v1",
])
def test_schema_refuses_a_mutable_checkpoint(uri):
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema({"engine": {"checkpoint": {"uri": uri}}})
    assert "/engine/checkpoint/uri" in str(err.value)


HF_REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("uri, model, extra", [
    ("s3://toolorch-artifacts/models/grpo-v3", "/models/checkpoint", {}),
    ("s3://toolorch-artifacts/runs/0f3a9c2be41d", "/models/checkpoint", {}),
    ("pvc://model-store/grpo/v1.2", "/models/grpo/v1.2", {}),
    (f"hf://Qwen/Qwen3-8B@{HF_REVISION}", "Qwen/Qwen3-8B", {"--revision": HF_REVISION}),
])
def test_each_checkpoint_source_reaches_vllm(uri, model, extra):
    docs = render({"engine": {"checkpoint": {"uri": uri}}})
    engine = one(docs, "Deployment", f"{PREFIX}-engine")
    args = flags(pod_spec(engine)["containers"][0])
    assert args["--model"] == model and all(args[k] == v for k, v in extra.items())
    init = pod_spec(engine).get("initContainers", [])
    volumes = {v["name"]: v for v in pod_spec(engine)["volumes"]}
    if uri.startswith("s3://"):  # pulled by the init container into the emptyDir vLLM reads
        assert init[0]["command"][-2:] == [uri, "/models/checkpoint"] and "emptyDir" in volumes["models"]
    else:
        assert not init
    if uri.startswith("pvc://"):
        assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "model-store", "readOnly": True}


def test_schema_refuses_inline_secrets_in_env():
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema({"gateway": {"env": [{"name": "OPENAI_API_KEY", "value": "sk-live"}]}})
    assert "/gateway/env/0/name" in str(err.value)


def test_no_object_carries_a_secret_value(rendered):
    case, docs = rendered
    assert not of_kind(docs, "Secret")
    for doc in docs:
        for pod_doc in [doc] if doc["kind"] in ("Deployment", "Pod") else []:
            for container in containers(pod_doc):
                for env in container.get("env", []):
                    if SECRET_NAME.search(env["name"]):
                        assert "value" not in env and "secretKeyRef" in env["valueFrom"], f"{case}: {env}"
                for source in container.get("envFrom", []):
                    assert set(source) == {"secretRef"}, f"{case}: {source}"
    for cm in of_kind(docs, "ConfigMap"):
        for text in cm["data"].values():
            assert not re.search(r"^\s*(api_key|apiKey|token|password)\s*:", text, re.M), f"{case}: {cm['metadata']['name']}"


def test_keys_reach_the_gateway_by_secret_reference():
    docs = render(CASES["values-paper.yaml"])
    gateway = pod_spec(one(docs, "Deployment", f"{PREFIX}-gateway"))["containers"][0]
    env = {e["name"]: e for e in gateway["env"]}
    assert env["TOOLORCH_API_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "toolorch-gateway-keys", "key": "api-keys"}
    assert gateway["envFrom"] == [{"secretRef": {"name": "toolorch-expert-keys"}}]
    engine = one(docs, "Deployment", f"{PREFIX}-engine")
    pull_env = {e["name"]: e for e in pod_spec(engine)["initContainers"][0]["env"]}
    assert pull_env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "toolorch-s3", "key": "secret-key"}


def test_prometheusrule_carries_the_rules_file():
    rule = one(render(), "PrometheusRule", f"{PREFIX}-alerts")
    assert rule["spec"] == yaml.safe_load((CHART_DIR / "alerts" / "rules.yaml").read_text())


def test_dashboards_ship_as_labelled_configmaps():
    files = sorted((CHART_DIR / "dashboards").glob("*.json"))
    maps = {cm["metadata"]["name"]: cm for cm in of_kind(render(), "ConfigMap") if "dashboard" in cm["metadata"]["name"]}
    assert len(files) == 5 and len(maps) == len(files)  # gateway, orchestration, experts, engine, training
    for path in files:
        cm = maps[f"{PREFIX}-dashboard-{path.stem}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())


def test_values_file_documents_every_leaf():
    """Every key of values.yaml has a `# --` comment on it or on a parent (helm-docs style)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    documented_indents: list[int] = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z]\w*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        documented_indents = [d for d in documented_indents if d < indent]
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1  # the comment block right above the key
        has_doc = j >= 0 and lines[j].strip().startswith("# --")
        if has_doc:
            documented_indents.append(indent)
        leaf = not line.rstrip().endswith(":")
        assert not leaf or documented_indents, f"values.yaml:{i + 1} {match.group(2)} has no '# --' doc"


# Kubernetes types passed through verbatim: the rendered objects are validated strictly instead
# (test_a_typo_inside_a_kubernetes_type_fails_validation).
PASS_THROUGH = {"/properties/global", "/$defs/affinity/properties/nodeAffinity",
                "/$defs/affinity/properties/podAffinity", "/$defs/affinity/properties/podAntiAffinity"}


def test_schema_is_closed_at_every_level():
    def walk(node, path: str):
        if isinstance(node, dict):
            if node.get("type") == "object" and path not in PASS_THROUGH:
                extra = node.get("additionalProperties")
                closed = extra is False or (isinstance(extra, dict) and "propertyNames" in node)
                assert closed, f"values.schema.json{path} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")
    walk(chart().schema, "")


def test_a_typo_inside_a_kubernetes_type_fails_validation():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecutionn": {"nodeSelectorTerms": []}}}
    engine = one(render({"engine": {"affinity": affinity}}), "Deployment", f"{PREFIX}-engine")
    with pytest.raises(Exception, match="requiredDuringSchedulingIgnoredDuringExecutionn"):
        validate(engine)
