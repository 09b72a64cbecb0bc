"""grpo component: launches toolorch.stages.grpo as a PyTorchJob and waits (torchrun without a cluster)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def grpo(config: Input[Artifact], sft: Input[Model], passk: Input[Dataset], envs: Input[Dataset],
         tasks: Input[Dataset], model: Output[Model], metrics: Output[Metrics], curves: Output[Markdown], image: str,
         nodes: int, gpus_per_node: int, timeout_s: int, namespace: str, queue: str):
    """Multi-turn GRPO from the SFT checkpoint.

    Args:
        image: Image of the PyTorchJob replicas.
        nodes: Replicas (one Master, nodes-1 Workers).
        gpus_per_node: torchrun processes and GPUs per replica.
        timeout_s: Give up (and delete the job) after this long.
        namespace: Where the job is created; empty: the namespace this pod runs in.
        queue: Kueue LocalQueue that admits all the job's GPUs at once ('' for none).
    """
    import os

    from toolorch.ops.kfp_io import markdown_report
    from toolorch.ops.pytorchjob import run_launched

    upstream = {"sft": sft.path, "passk": passk.path, "synth_envs": envs.path, "synth_tasks": tasks.path}
    run_launched("grpo", config.path, metrics, upstream, model.path, image=image, nodes=nodes,
                 gpus_per_node=gpus_per_node, timeout_s=timeout_s, namespace=namespace or None, queue=queue)
    markdown_report(os.path.join(model.path, "curves"), curves.path)
