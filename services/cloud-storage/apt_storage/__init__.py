"""cloud-storage plugin: checksummed, resumable backups to s3, oss, hf, modelscope and file destinations."""
