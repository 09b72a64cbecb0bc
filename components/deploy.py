"""deploy component: toolorch.stages.deploy.run (publish, gate on the eval verdict, deploy, smoke test)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def deploy(config: Input[Artifact], grpo: Input[Model], results: Input[Artifact], tasks: Input[Dataset],
           envs: Input[Dataset], report: Output[Artifact], metrics: Output[Metrics], force_deploy: bool):
    """Publish the GRPO checkpoint and deploy it if it beats the best single expert on utility.

    Args:
        force_deploy: Deploy even a model that loses to the best single expert.
    """
    import os
    import tempfile

    import yaml

    from toolorch.ops.kfp_io import run_stage

    path = config.path
    if force_deploy:  # the pipeline parameter wins over the profile's stages.deploy.force_deploy
        with open(config.path) as f:
            cfg = yaml.safe_load(f)
        cfg.setdefault("stages", {}).setdefault("deploy", {})["force_deploy"] = True
        path = os.path.join(tempfile.mkdtemp(), "config.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
    run_stage("deploy", path, metrics, {"grpo": grpo.path, "eval": results.path, "synth_tasks": tasks.path,
                                        "synth_envs": envs.path}, report.path)
