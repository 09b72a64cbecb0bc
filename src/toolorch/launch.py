"""TorchX component: the GRPO stage under torchrun, locally or on a cluster.

    torchx run -s local_cwd toolorch/launch.py:grpo --nproc_per_node 2 --config configs/tiny.yaml
    torchx run --workspace "" --dryrun -s kubernetes -cfg queue=default \\
        toolorch/launch.py:grpo --nnodes 2 --nproc_per_node 8 --gpus 8 --config configs/paper.yaml

`local_cwd` needs `torchrun` on PATH. TorchX is an optional install (its urllib3 pin fights
kfp's): `pip install -c constraints.txt --no-deps torchx==0.7.0 docstring-parser pyre-extensions`.
The cluster form used in production is manifests/pytorchjob-grpo.yaml (a Kubeflow PyTorchJob).
"""
from __future__ import annotations


def grpo(config: str = "configs/tiny.yaml", nnodes: int = 1, nproc_per_node: int = 1, gpus: int = 0,
         image: str = "ghcr.io/toolorch/toolorch-train:0.1.0", overrides: str = "") -> "object":
    """GRPO on `nnodes` x `nproc_per_node` processes (FSDP2 when more than one).

    Args:
        config: profile YAML.
        nnodes: nodes.
        nproc_per_node: processes (GPUs) per node.
        gpus: GPUs requested per node (0 on CPU).
        image: container image with toolorch installed (`pip install .[train]`).
        overrides: space-separated key=value config overrides.
    """
    from torchx.components.dist import ddp
    from torchx.specs import Resource

    args = ["--config", config]
    for item in overrides.split():
        args += ["--set", item]
    resource = Resource(cpu=max(2, 4 * nproc_per_node), gpu=gpus, memMB=16_000 * max(1, nproc_per_node))
    app = ddp(*args, m="toolorch.stages.grpo", image=image, name="toolorch-grpo",
              j=f"{nnodes}x{nproc_per_node}", cpu=resource.cpu, gpu=resource.gpu, memMB=resource.memMB)
    return app
