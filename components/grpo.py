"""grpo component: launches toolorch.stages.grpo as a PyTorchJob and waits (torchrun without a cluster)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def grpo(config: Input[Artifact], sft: Input[Model], passk: Input[Dataset], envs: Input[Dataset],
         tasks: Input[Dataset], model: Output[Model], metrics: Output[Metrics], image: str, nodes: int,
         gpus_per_node: int, timeout_s: int):
    """Multi-turn GRPO from the SFT checkpoint.

    Args:
        image: Image of the PyTorchJob replicas.
        nodes: Replicas (one Master, nodes-1 Workers).
        gpus_per_node: torchrun processes and GPUs per replica.
        timeout_s: Give up (and delete the job) after this long.
    """
    import json

    from toolorch.ops.kfp_io import flat_numbers
    from toolorch.ops.pytorchjob import launch_grpo

    launch_grpo(config.path, {"sft_dir": sft.path, "tasks_path": f"{passk.path}/tasks.jsonl", "envs_dir": envs.path,
                              "heldout_path": f"{tasks.path}/heldout.jsonl"},
                {"out_dir": model.path, "metrics_path": metrics.path},
                image=image, nodes=nodes, gpus_per_node=gpus_per_node, timeout_s=timeout_s)
    with open(metrics.path) as f:
        for key, value in flat_numbers(json.load(f)).items():
            metrics.log_metric(key, value)
