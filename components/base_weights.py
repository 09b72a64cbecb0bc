"""base-weights component: the base model's weights as an artifact (toolorch.ops.weights.fetch_base)."""

from kfp import dsl
from kfp.dsl import Model, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def base_weights(uri: str, weights: Output[Model]):
    """Fetch the base model (an HF folder in S3/MinIO) once; KFP's cache serves later runs.

    Args:
        uri: s3://bucket/path of the HF folder (one immutable version); empty: the profile's stages.sft.base.
    """
    from toolorch.ops.weights import fetch_base

    fetch_base(uri, weights.path)
    weights.metadata["uri"] = uri
