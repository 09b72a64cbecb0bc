"""eval component: toolorch.stages.eval.run, plus the report as a Markdown artifact."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["train"], install_kfp_package=False)
def eval_policies(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], sft: Input[Model],
                  grpo: Input[Model], results: Output[Artifact], report: Output[Markdown], metrics: Output[Metrics]):
    """Evaluate the trained policies against baselines on held-out tasks."""
    from toolorch.ops.kfp_io import markdown_report, run_stage

    run_stage("eval", config.path, metrics, {"synth_tasks": tasks.path, "synth_envs": envs.path, "sft": sft.path,
                                             "grpo": grpo.path}, results.path)
    markdown_report(results.path, report.path)
