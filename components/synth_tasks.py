"""synth-tasks components: toolorch.stages.synth_tasks.run on one shard of the environments, and the merge."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def synth_tasks_shard(config: Input[Artifact], envs: Input[Dataset], shard: int, shards: int,
                      part: Output[Dataset], metrics: Output[Metrics]):
    """Synthesize and verify the tasks of the environments this shard owns.

    Args:
        shard: This shard, 0 .. shards-1.
        shards: How many shards split the environments.
    """
    from toolorch.ops.kfp_io import run_shard

    run_shard("synth_tasks", config.path, metrics, {"synth_envs": envs.path}, part.path, shard=shard, shards=shards)


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def synth_tasks(config: Input[Artifact], parts: Input[List[Dataset]], tasks: Output[Dataset], metrics: Output[Metrics],
        dvc_remote: str = "", data_from_dvc: str = ""):
    """Verified tasks split into train.jsonl / heldout.jsonl (the shards merged).

    Args:
        dvc_remote: The DVC remote (s3://...) versions are fetched from.
        data_from_dvc: name=md5 dataset versions (`python -m toolorch.ops.dvc_publish versions dvc.lock`);
            naming tasks takes that version instead of the shards' output.
    """
    from toolorch.ops.dvc_publish import fetch_version
    from toolorch.ops.kfp_io import merge_shards

    if fetch_version("tasks", data_from_dvc, dvc_remote, tasks.path):
        metrics.log_metric("from_dvc", 1)
    else:
        merge_shards("synth_tasks", config.path, metrics, [p.path for p in parts], tasks.path)
