"""dvc-publish component: the run's datasets into the DVC remote (toolorch.ops.dvc_publish.push)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def dvc_publish(envs: Input[Dataset], tasks: Input[Dataset], passk: Input[Dataset], remote: str,
                pointers: Output[Artifact]):
    """Push envs, tasks and passk into the DVC remote under their content hashes; the artifact holds
    their .dvc pointers (envs.dvc, tasks.dvc, passk.dvc), which a workstation commits and `dvc pull`s.

    Args:
        remote: The DVC remote's URL (.dvc/config's `minio`), e.g. s3://toolorch-dvc.
    """
    from toolorch.ops.dvc_publish import push

    hashes = push({"envs": envs.path, "tasks": tasks.path, "passk": passk.path}, remote, pointers.path)
    pointers.metadata.update({"remote": remote, **hashes})
