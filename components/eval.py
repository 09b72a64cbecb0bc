"""eval components: toolorch.stages.eval.run on one shard of the held-out tasks, and the merge of the
shards, plus the report as a Markdown artifact."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def eval_shard(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], sft: Input[Model],
               grpo: Input[Model], shard: int, shards: int, part: Output[Artifact], metrics: Output[Metrics]):
    """Evaluate the trained policies and baselines on the held-out tasks this shard owns.

    Args:
        shard: This shard, 0 .. shards-1.
        shards: How many shards split the tasks.
    """
    from toolorch.ops.kfp_io import run_shard

    run_shard("eval", config.path, metrics, {"synth_tasks": tasks.path, "synth_envs": envs.path, "sft": sft.path,
                                             "grpo": grpo.path}, part.path, shard=shard, shards=shards)


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def eval_policies(config: Input[Artifact], parts: Input[List[Artifact]], results: Output[Artifact],
                  report: Output[Markdown], metrics: Output[Metrics]):
    """Evaluate the trained policies against baselines on held-out tasks (the shards merged)."""
    from toolorch.ops.kfp_io import markdown_report, merge_shards

    merge_shards("eval", config.path, metrics, [p.path for p in parts], results.path)
    markdown_report(results.path, report.path)
