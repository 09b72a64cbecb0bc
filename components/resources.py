"""Kubernetes settings shared by the pipeline's tasks: the MinIO secret, the expert keys, the H100 nodepool."""

from kfp import dsl, kubernetes

from toolorch.ops.preflight import EXPERT_KEYS, EXPERTS_SECRET

S3_SECRET = "toolorch-s3"  # keys: endpoint, access-key, secret-key (manifests/minio.yaml)
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")  # set by GPU feature discovery
GPU_TAINT = "nvidia.com/gpu"
SHM_SIZE = "16Gi"  # NCCL and dataloader workers need more than the 64 MiB default /dev/shm


def with_s3_secret(task: dsl.PipelineTask) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env={
        "endpoint": "TOOLORCH_S3_ENDPOINT", "access-key": "AWS_ACCESS_KEY_ID", "secret-key": "AWS_SECRET_ACCESS_KEY"})


def with_expert_keys(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The expert API keys as environment variables; optional: a profile of simulated experts needs none."""
    return kubernetes.use_secret_as_env(task, secret_name=EXPERTS_SECRET, optional=True,
                                        secret_key_to_env={key: var for var, key in EXPERT_KEYS.items()})


def on_h100(task: dsl.PipelineTask, gpus: int = 1, cpu: str = "8", memory: str = "64Gi") -> dsl.PipelineTask:
    """Schedule on the H100 nodepool with `gpus` GPUs, a RAM-backed /dev/shm and the S3 secret."""
    task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
    task.set_cpu_limit(cpu).set_memory_limit(memory)
    kubernetes.add_node_selector(task, label_key=GPU_NODE_LABEL[0], label_value=GPU_NODE_LABEL[1])
    kubernetes.add_toleration(task, key=GPU_TAINT, operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=SHM_SIZE)
    return with_expert_keys(with_s3_secret(task))


def on_cpu(task: dsl.PipelineTask, cpu: str = "2", memory: str = "8Gi") -> dsl.PipelineTask:
    task.set_cpu_limit(cpu).set_memory_limit(memory)
    return with_expert_keys(with_s3_secret(task))
