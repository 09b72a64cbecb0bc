"""passk component: toolorch.stages.passk.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def passk(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], passk: Output[Dataset],
          metrics: Output[Metrics], dvc_remote: str = "", data_from_dvc: str = ""):
    """Teacher pass@k over the train tasks: kept tasks and verified trajectories.

    Args:
        dvc_remote: The DVC remote (s3://...) versions are fetched from.
        data_from_dvc: name=md5 dataset versions (`python -m toolorch.ops.dvc_publish versions dvc.lock`);
            naming passk fetches that version instead of computing it.
    """
    from toolorch.ops.dvc_publish import fetch_version
    from toolorch.ops.kfp_io import run_stage

    if fetch_version("passk", data_from_dvc, dvc_remote, passk.path):
        metrics.log_metric("from_dvc", 1)
    else:
        run_stage("passk", config.path, metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path}, passk.path)
