"""sft component: toolorch.stages.sft.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def sft(config: Input[Artifact], passk: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """Warm-start the orchestrator on the verified trajectories."""
    from toolorch.ops.kfp_io import run_stage

    run_stage("sft", config.path, metrics, {"passk": passk.path}, model.path)
