"""sft component: toolorch.stages.sft.run, plus its training curves as a Markdown artifact."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def sft(config: Input[Artifact], passk: Input[Dataset], model: Output[Model], metrics: Output[Metrics],
        curves: Output[Markdown]):
    """Warm-start the orchestrator on the verified trajectories."""
    import os

    from toolorch.ops.kfp_io import markdown_report, run_stage

    run_stage("sft", config.path, metrics, {"passk": passk.path}, model.path)
    markdown_report(os.path.join(model.path, "curves"), curves.path)
