"""synth-tasks component: toolorch.stages.synth_tasks.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def synth_tasks(config: Input[Artifact], envs: Input[Dataset], tasks: Output[Dataset], metrics: Output[Metrics],
                dvc_remote: str = "", data_from_dvc: str = ""):
    """Synthesize verified tasks and split them into train.jsonl / heldout.jsonl.

    Args:
        dvc_remote: The DVC remote (s3://...) versions are fetched from.
        data_from_dvc: name=md5 dataset versions (`python -m toolorch.ops.dvc_publish versions dvc.lock`);
            naming tasks fetches that version instead of computing it.
    """
    from toolorch.ops.dvc_publish import fetch_version
    from toolorch.ops.kfp_io import run_stage

    if fetch_version("tasks", data_from_dvc, dvc_remote, tasks.path):
        metrics.log_metric("from_dvc", 1)
    else:
        run_stage("synth_tasks", config.path, metrics, {"synth_envs": envs.path}, tasks.path)
