"""preflight component: every expert endpoint answers one call with its key, before any stage runs."""

from kfp import dsl
from kfp.dsl import Artifact, Input

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def preflight(config: Input[Artifact], timeout_s: float):
    """Fail the run in seconds, naming each expert whose key is missing or whose endpoint does not answer.

    Args:
        timeout_s: Per call; each openai expert gets two attempts.
    """
    from toolorch.ops.preflight import preflight as check

    check(config.path, timeout_s)
