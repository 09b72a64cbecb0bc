"""passk component: toolorch.stages.passk.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def passk(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], passk: Output[Dataset],
          metrics: Output[Metrics]):
    """Teacher pass@k over the train tasks: kept tasks and verified trajectories."""
    from toolorch.ops.kfp_io import run_stage

    run_stage("passk", config.path, metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path}, passk.path)
