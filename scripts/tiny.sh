#!/usr/bin/env bash
# The tiny pipeline end to end on CPU: install into .venv, `dvc repro` every stage on
# configs/tiny.yaml (resumes: finished stages are skipped), then print the metrics.
#   bash scripts/tiny.sh              # extra arguments go to `dvc repro`, e.g. --force or eval
# With TOOLORCH_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set, the outputs are also
# pushed to the DVC remote on that S3/MinIO endpoint (its bucket is created when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
git rev-parse --git-dir >/dev/null 2>&1 || { echo "dvc repro needs a git checkout of toolorch" >&2; exit 1; }
dvc repro "$@"
dvc metrics show
if [ -n "${TOOLORCH_S3_ENDPOINT:-}" ]; then
  url="$(dvc config remote.minio.url)"   # s3://bucket/prefix
  bucket="${url#s3://}"
  python -m toolorch.ops.storage_cli ensure-bucket "${bucket%%/*}"
  dvc remote modify --local minio endpointurl "$TOOLORCH_S3_ENDPOINT"
  dvc push
fi
