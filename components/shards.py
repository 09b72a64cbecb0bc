"""shard-indices: the items a sharded stage's `dsl.ParallelFor` runs over, one per shard."""

from kfp import dsl

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def shard_indices(shards: int) -> list:
    """0 .. shards-1 (a KFP loop runs over a list, not a count).

    Args:
        shards: How many shards split synth-tasks, passk and eval.
    """
    if shards < 1:
        raise ValueError(f"shards: {shards}; need at least 1")
    return list(range(shards))
