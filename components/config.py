"""resolve-config: the profile plus this run's parameters, resolved once for every stage."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def resolve_config(profile: str, seed: int, model: str, k: int, group_size: int, preference_mix: str,
                   overrides: list, config: Output[Artifact]):
    """Write the resolved config YAML.

    Args:
        profile: A profile's name (`tiny` is configs/tiny.yaml) or a YAML path inside the image.
        seed: Seed of every stage.
        model: Base model for sft (`tiny` or an HF folder); empty keeps the profile's.
        k: Teacher trajectories per task in passk; 0 keeps the profile's.
        group_size: GRPO rollouts per task; 0 keeps the profile's.
        preference_mix: Who asks the synthesized tasks, e.g. "cost_averse=3,balanced=1"; empty keeps the profile's.
        overrides: Further `key=value` config overrides.
    """
    from toolorch.ops.kfp_io import resolve_config as resolve

    resolve(profile, seed, overrides, config.path, model=model, k=k, group_size=group_size,
            preference_mix=preference_mix)
