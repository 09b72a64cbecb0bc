"""passk components: toolorch.stages.passk.run on one shard of the tasks, and the merge of the shards."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def passk_shard(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], shard: int, shards: int,
                part: Output[Dataset], metrics: Output[Metrics]):
    """Teacher pass@k over the train tasks this shard owns.

    Args:
        shard: This shard, 0 .. shards-1.
        shards: How many shards split the tasks.
    """
    from toolorch.ops.kfp_io import run_shard

    run_shard("passk", config.path, metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path}, part.path,
              shard=shard, shards=shards)


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def passk(config: Input[Artifact], parts: Input[List[Dataset]], passk: Output[Dataset], metrics: Output[Metrics],
        dvc_remote: str = "", data_from_dvc: str = ""):
    """Teacher pass@k over the train tasks: kept tasks and verified trajectories (the shards merged).

    Args:
        dvc_remote: The DVC remote (s3://...) versions are fetched from.
        data_from_dvc: name=md5 dataset versions (`python -m toolorch.ops.dvc_publish versions dvc.lock`);
            naming passk takes that version instead of the shards' output.
    """
    from toolorch.ops.dvc_publish import fetch_version
    from toolorch.ops.kfp_io import merge_shards

    if fetch_version("passk", data_from_dvc, dvc_remote, passk.path):
        metrics.log_metric("from_dvc", 1)
    else:
        merge_shards("passk", config.path, metrics, [p.path for p in parts], passk.path)
