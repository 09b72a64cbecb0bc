"""Operations glue: object storage, KFP adapters, Kubernetes launchers."""
