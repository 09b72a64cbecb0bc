"""python s3_transfer_limited.py LIMIT_BYTES FILE URL: upload FILE to URL and download it back
to FILE.back, under an address-space limit (RLIMIT_AS) set before anything big is allocated.
Prints the peak virtual memory (VmPeak) and peak resident memory (VmHWM), KiB. S3 settings come from TOOLORCH_S3_* / AWS_*."""
import resource
import sys

limit, path, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

from toolorch.ops.storage import S3Store  # noqa: E402  (imported under the limit too)

store = S3Store()
store.upload_file(path, url)
store.download_file(url, path + ".back")
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("VmPeak", status["VmPeak"].split()[0], "VmHWM", status["VmHWM"].split()[0])
