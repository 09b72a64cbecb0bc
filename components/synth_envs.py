"""synth-envs component: toolorch.stages.synth_envs.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def synth_envs(config: Input[Artifact], envs: Output[Dataset], metrics: Output[Metrics]):
    """Build one SQLite environment per configured domain."""
    from toolorch.ops.kfp_io import run_stage

    run_stage("synth_envs", config.path, metrics, {}, envs.path)
