"""helm/: what the rendered objects say to each other. vLLM flags follow the values one to one;
the gateway's --orchestrator URLs and the catalog's in-cluster experts resolve to rendered
Services of the right engines; the canary gets its own checkpoint and share; NetworkPolicies
select the pods they mean; rollouts never drop below the replicas in service."""
from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlparse

import helm_python
import pytest
import yaml
from chart import (
    PREFIX,
    containers,
    flags,
    of_kind,
    one,
    pod_labels,
    pod_spec,
    render,
    scenario_values,
    selects,
)
from metric_names import gateway_contract

PAPER = render(scenario_values("values-paper.yaml"))


def gateway_args(docs: list[dict]) -> list[str]:
    return pod_spec(one(docs, "Deployment", f"{PREFIX}-gateway"))["containers"][0]["args"]


def service_target(docs: list[dict], url: str) -> dict:
    """The Deployment whose pods the Service named by `url`'s host selects on `url`'s port."""
    parsed = urlparse(url)
    service = one(docs, "Service", parsed.hostname)
    assert parsed.port in [p["port"] for p in service["spec"]["ports"]]
    selected = [d for d in of_kind(docs, "Deployment") if selects({"matchLabels": service["spec"]["selector"]},
                                                                   pod_labels(d))]
    assert len(selected) == 1, f"{parsed.hostname} selects {len(selected)} Deployments"
    return selected[0]


def test_engine_flags_follow_the_values_one_to_one():
    vllm = {"maxModelLen": 12345, "dtype": "float16", "tensorParallelSize": 2, "gpuMemoryUtilization": 0.77,
            "enablePrefixCaching": False, "extraArgs": ["--enforce-eager", "--seed=7"]}
    docs = render({"engine": {"vllm": vllm, "servedModelName": "orch-7"}})
    args = pod_spec(one(docs, "Deployment", f"{PREFIX}-engine"))["containers"][0]["args"]
    assert args[1:] == ["--served-model-name=orch-7", "--host=0.0.0.0", "--port=8000", "--max-model-len=12345",
                        "--dtype=float16", "--tensor-parallel-size=2", "--gpu-memory-utilization=0.77",
                        "--no-enable-prefix-caching", "--enable-auto-tool-choice", "--tool-call-parser=hermes",
                        "--enforce-eager", "--seed=7"]


def test_experts_serve_without_the_orchestrators_tool_parser():
    math = pod_spec(one(PAPER, "Deployment", f"{PREFIX}-expert-math-72b"))["containers"][0]
    args = flags(math)
    assert args["--tensor-parallel-size"] == "4" and args["--served-model-name"] == "Qwen2.5-Math-72B-Instruct"
    assert "--tool-call-parser" not in args and "--enable-auto-tool-choice" not in args
    assert math["resources"]["limits"]["nvidia.com/gpu"] == 4


def test_gateway_orchestrators_resolve_to_their_engines():
    args = gateway_args(PAPER)
    specs = [a.removeprefix("--orchestrator=") for a in args if a.startswith("--orchestrator=")]
    assert len(specs) == 2 and "--canary-weight=0.1" in args
    for spec in specs:
        variant, _, spec = spec.rpartition("=")
        backend, _, rest = spec.partition(":")
        url, _, served = rest.partition("#")
        engine = service_target(PAPER, url)
        assert backend == "openai" and url.endswith("/v1")
        assert engine["metadata"]["labels"]["toolorch.io/model"] == (variant or "default")
        assert flags(pod_spec(engine)["containers"][0])["--served-model-name"] == served
    canary = one(PAPER, "Deployment", f"{PREFIX}-engine-canary")
    assert canary["spec"]["template"]["metadata"]["annotations"]["toolorch.io/checkpoint"].endswith("qwen3-8b-v2")
    assert canary["spec"]["replicas"] == 1


def test_without_canary_one_orchestrator_and_no_weight():
    args = gateway_args(render())
    assert [a for a in args if a.startswith("--orchestrator")] == [
        f"--orchestrator=openai:http://{PREFIX}-engine:8000/v1#orchestrator"]
    assert not [a for a in args if a.startswith("--canary-weight")]
    assert args[:2] == ["serve", "--catalog=/etc/toolorch/catalog.yaml"] and "--port=8080" in args


def test_catalog_points_at_rendered_experts():
    catalog = yaml.safe_load(one(PAPER, "ConfigMap", f"{PREFIX}-catalog")["data"]["catalog.yaml"])
    experts = {e["name"]: e for e in catalog["experts"]}
    assert set(experts) == {"frontier", "mini", "math-72b", "llama-70b", "coder-32b", "math-7b"}
    assert experts["frontier"]["base_url"] == "https://api.openai.com/v1"
    assert experts["frontier"]["api_key_env"] == "OPENAI_API_KEY"
    assert experts["frontier"]["price"] == {"input": 1.25, "output": 10.0}
    for name in ("math-72b", "llama-70b", "coder-32b", "math-7b"):
        engine = service_target(PAPER, experts[name]["base_url"])
        assert flags(pod_spec(engine)["containers"][0])["--served-model-name"] == experts[name]["model"]
        assert "api_key_env" not in experts[name]
    assert catalog["orchestrator"] == {"input": 0.2, "output": 0.2}
    assert catalog["tools"] == {"max_observation_chars": 4000, "code_timeout_s": 30, "answer_tool": True,
                                "describe_db_tools": True}


def test_simulated_experts_keep_their_profile():
    catalog = yaml.safe_load(one(render(scenario_values("values-cpu.yaml")), "ConfigMap",
                                 f"{PREFIX}-catalog")["data"]["catalog.yaml"])
    frontier = catalog["experts"][0]
    assert frontier["backend"] == "simulated" and "base_url" not in frontier
    assert frontier["simulated"] == {"default_accuracy": 0.7, "tokens_out_mean": 600, "latency_s_mean": 20}


@pytest.mark.parametrize("scenario", ["values.yaml", "values-cpu.yaml", "values-gpu.yaml", "values-paper.yaml"])
def test_catalog_loads_as_the_runtime_catalog(scenario):
    """The file is what toolorch.core.catalog.Catalog (extra keys forbidden) reads."""
    catalog_module = pytest.importorskip("toolorch.core.catalog")
    text = one(render(scenario_values(scenario)), "ConfigMap", f"{PREFIX}-catalog")["data"]["catalog.yaml"]
    catalog = catalog_module.Catalog.model_validate(yaml.safe_load(text))
    assert [e.name for e in catalog.experts] == [e["name"] for e in (scenario_values(scenario) or {}).get(
        "catalog", {}).get("experts", [])]


def test_catalog_experts_load_as_expert_configs():
    """Each expert entry fits the runtime's ExpertConfig (extra keys forbidden) with its price inline."""
    config = pytest.importorskip("toolorch.core.config")
    text = one(PAPER, "ConfigMap", f"{PREFIX}-catalog")["data"]["catalog.yaml"]
    for expert in yaml.safe_load(text)["experts"]:
        config.Price.model_validate(expert["price"])
        config.ExpertConfig.model_validate({**expert, "price": expert["name"]})


def test_catalog_refuses_an_unknown_in_cluster_expert():
    expert = {"name": "x", "backend": "openai", "inCluster": "nope", "price": {"input": 1, "output": 1}}
    with pytest.raises(helm_python.HelmRenderError, match=r'catalog.experts\[x\].inCluster: no experts.models entry named "nope"'):
        render({"catalog": {"experts": [expert]}})


def test_a_catalog_change_rolls_the_gateway():
    def checksum(docs):
        return one(docs, "Deployment", f"{PREFIX}-gateway")["spec"]["template"]["metadata"]["annotations"]["checksum/catalog"]
    assert checksum(render()) != checksum(render({"catalog": {"tools": {"codeTimeoutS": 9}}}))


@pytest.mark.parametrize("scenario", ["values.yaml", "values-paper.yaml"])
def test_rollouts_keep_every_replica_in_service(scenario):
    for deployment in of_kind(render(scenario_values(scenario)), "Deployment"):
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, deployment["metadata"]["name"]


def test_engine_probes_and_placement():
    engine = pod_spec(one(PAPER, "Deployment", f"{PREFIX}-engine"))
    vllm = engine["containers"][0]
    startup = vllm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 600  # 10 s x 60 to load weights
    assert vllm["readinessProbe"]["httpGet"]["path"] == vllm["livenessProbe"]["httpGet"]["path"] == "/health"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert engine["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert engine["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    shm = {v["name"]: v for v in engine["volumes"]}["dshm"]["emptyDir"]
    assert shm == {"medium": "Memory", "sizeLimit": "16Gi"}


def test_gateway_runs_non_root_on_a_read_only_root():
    pod = pod_spec(one(PAPER, "Deployment", f"{PREFIX}-gateway"))
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/toolorch"]]["configMap"]["name"] == f"{PREFIX}-catalog"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_autoscalers_read_the_declared_inflight_gauge():
    assert gateway_contract()["toolorch_inflight_orchestrations"][0] == "gauge"
    docs = render()
    hpa = one(docs, "HorizontalPodAutoscaler", f"{PREFIX}-gateway")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "toolorch_inflight_orchestrations"
    assert "replicas" not in one(docs, "Deployment", f"{PREFIX}-gateway")["spec"]  # the HPA owns it
    keda = one(render({"gateway": {"autoscaling": {"keda": {"enabled": True}}}}), "ScaledObject", f"{PREFIX}-gateway")
    assert keda["spec"]["triggers"][0]["metadata"]["query"] == (
        f'sum(toolorch_inflight_orchestrations{{namespace="toolorch", job="{PREFIX}-gateway"}})')


def test_network_policies_select_the_pods_they_mean():
    pods = {d["metadata"]["name"]: pod_labels(d) for d in of_kind(PAPER, "Deployment")}
    gateway, engines = pods.pop(f"{PREFIX}-gateway"), pods
    egress = one(PAPER, "NetworkPolicy", f"{PREFIX}-gateway")["spec"]
    assert selects(egress["podSelector"], gateway) and egress["policyTypes"] == ["Egress"]
    in_cluster, dns, hosted = egress["egress"]
    assert all(selects(in_cluster["to"][0]["podSelector"], labels) for labels in engines.values())
    assert not selects(in_cluster["to"][0]["podSelector"], gateway)
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert hosted["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0" and hosted["ports"] == [{"port": 443, "protocol": "TCP"}]
    ingress = one(PAPER, "NetworkPolicy", f"{PREFIX}-engines")["spec"]
    assert all(selects(ingress["podSelector"], labels) for labels in engines.values())
    assert not selects(ingress["podSelector"], gateway) and ingress["policyTypes"] == ["Ingress"]
    peers = ingress["ingress"][0]["from"]
    assert selects(peers[0]["podSelector"], gateway) and "namespaceSelector" in peers[1]


def test_the_gateway_egress_is_closed_without_hosted_experts():
    egress = one(render(scenario_values("values-cpu.yaml")), "NetworkPolicy", f"{PREFIX}-gateway")["spec"]["egress"]
    assert len(egress) == 2 and not any("ipBlock" in peer for rule in egress for peer in rule.get("to", []))


def test_init_containers_are_hardened_too():
    for deployment in of_kind(PAPER, "Deployment"):
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]


def test_checkpoint_pull_runs_the_packages_storage_command():
    """The init container's command exists in this package (it runs in the cpu image built from it)."""
    pull = pod_spec(one(render(), "Deployment", f"{PREFIX}-engine"))["initContainers"][0]["command"]
    assert pull[:2] == ["python", "-m"] and pull[3] == "pull"
    result = subprocess.run([sys.executable, "-m", pull[2], "pull", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "Download" in result.stdout, result.stderr
