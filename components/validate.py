"""validate component: toolorch.stages.validate.run (a failed suite fails the run)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def validate(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], passk: Input[Dataset],
             data_docs: Output[Artifact], metrics: Output[Metrics]):
    """Great Expectations suites over environments, tasks and trajectories; writes Data Docs."""
    from toolorch.ops.kfp_io import run_stage

    run_stage("validate", config.path, metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path,
                                                 "passk": passk.path}, data_docs.path)
