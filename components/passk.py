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
def passk(config: Input[Artifact], parts: Input[List[Dataset]], passk: Output[Dataset], metrics: Output[Metrics]):
    """Teacher pass@k over the train tasks: kept tasks and verified trajectories (the shards merged)."""
    from toolorch.ops.kfp_io import merge_shards

    merge_shards("passk", config.path, metrics, [p.path for p in parts], passk.path)
