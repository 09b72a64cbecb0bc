"""sft component: toolorch.stages.sft.run, in this pod on one GPU, as a PyTorchJob across more; plus its
training curves as a Markdown artifact."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def sft(config: Input[Artifact], passk: Input[Dataset], base: Input[Model], model: Output[Model],
        metrics: Output[Metrics], curves: Output[Markdown], image: str = "", nodes: int = 1, gpus_per_node: int = 1, timeout_s: int = 86400):
    """Warm-start the orchestrator on the verified trajectories.

    Args:
        base: Base model weights (base-weights' artifact); its PROFILE_BASE note: the profile's stages.sft.base.
        image: Image of the PyTorchJob replicas (beyond one GPU).
        nodes: Replicas; nodes x gpus_per_node > 1 runs FSDP2 in a PyTorchJob (torchrun without a cluster).
        gpus_per_node: torchrun processes and GPUs per replica.
        timeout_s: Give up on the PyTorchJob (and delete it) after this long.
    """
    import os
    import tempfile

    from toolorch.ops.kfp_io import markdown_report, run_stage, with_overrides
    from toolorch.ops.pytorchjob import run_launched
    from toolorch.ops.weights import base_overrides

    config_path = config.path
    if base_overrides(base.path):
        config_path = with_overrides(config.path, base_overrides(base.path), tempfile.mkdtemp())
    if nodes * gpus_per_node == 1:
        run_stage("sft", config_path, metrics, {"passk": passk.path}, model.path)
    else:
        run_launched("sft", config_path, metrics, {"passk": passk.path}, model.path, image=image, nodes=nodes,
                     gpus_per_node=gpus_per_node, timeout_s=timeout_s)
    markdown_report(os.path.join(model.path, "curves"), curves.path)
