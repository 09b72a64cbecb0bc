"""The container images of the pipeline, named once. Built from images/Dockerfile.<kind>;
the tag follows the package version so a pipeline spec always names the code it runs."""

REGISTRY = "ghcr.io/toolorch"
VERSION = "0.1.0"

IMAGES = {
    "cpu": f"{REGISTRY}/toolorch-cpu:{VERSION}",      # data stages, validate, launchers
    "train": f"{REGISTRY}/toolorch-train:{VERSION}",  # CUDA torch: sft, grpo workers, eval
    "serve": f"{REGISTRY}/toolorch-serve:{VERSION}",  # vLLM + gateway (helm chart)
}
