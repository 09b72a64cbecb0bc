"""validate component: toolorch.stages.validate.run (a failed suite fails the run).

`data_docs` holds GE's Data Docs site and report.html; `report` is that page as the run page's
HTML view (offline: no scripts, no CDN styles), written also when a suite fails."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def validate(config: Input[Artifact], envs: Input[Dataset], tasks: Input[Dataset], passk: Input[Dataset],
             data_docs: Output[Artifact], report: Output[HTML], metrics: Output[Metrics]):
    """Great Expectations suites over environments, tasks and trajectories; writes Data Docs."""
    import shutil
    from pathlib import Path

    from toolorch.ops.kfp_io import run_stage

    try:
        run_stage("validate", config.path, metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path,
                                                     "passk": passk.path}, data_docs.path)
    finally:
        page = Path(data_docs.path) / "report.html"
        if page.exists():
            shutil.copyfile(page, report.path)
