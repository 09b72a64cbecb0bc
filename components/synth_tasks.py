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
def synth_tasks(config: Input[Artifact], parts: Input[List[Dataset]], tasks: Output[Dataset],
                metrics: Output[Metrics]):
    """Verified tasks split into train.jsonl / heldout.jsonl (the shards merged)."""
    from toolorch.ops.kfp_io import merge_shards

    merge_shards("synth_tasks", config.path, metrics, [p.path for p in parts], tasks.path)
