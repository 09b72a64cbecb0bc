"""grpo component: launches toolorch.stages.grpo as a PyTorchJob and waits (torchrun without a cluster)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def grpo(config: Input[Artifact], sft: Input[Model], passk: Input[Dataset], envs: Input[Dataset],
         tasks: Input[Dataset], model: Output[Model], metrics: Output[Metrics], curves: Output[Markdown], image: str,
         nodes: int, gpus_per_node: int, timeout_s: int):
    """Multi-turn GRPO from the SFT checkpoint.

    Args:
        image: Image of the PyTorchJob replicas.
        nodes: Replicas (one Master, nodes-1 Workers).
        gpus_per_node: torchrun processes and GPUs per replica.
        timeout_s: Give up (and delete the job) after this long.
    """
    import os
    import tempfile

    from toolorch.ops.kfp_io import log_headline, markdown_report, stage_paths
    from toolorch.ops.pytorchjob import launch_grpo

    upstream = {"sft": sft.path, "passk": passk.path, "synth_envs": envs.path, "synth_tasks": tasks.path}
    paths = {k: str(v) for k, v in stage_paths("grpo", upstream, model.path, metrics.path, tempfile.mkdtemp()).items()}
    outputs = {k: paths.pop(k) for k in ("out_dir", "metrics_path")}
    launch_grpo(config.path, paths, outputs, image=image, nodes=nodes, gpus_per_node=gpus_per_node,
                timeout_s=timeout_s)
    log_headline("grpo", metrics)
    markdown_report(os.path.join(model.path, "curves"), curves.path)
