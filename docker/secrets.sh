#!/usr/bin/env bash
# Random tokens for a deployment: `docker/secrets.sh DIR` (what `make secrets` and
# `make k8s-secrets` run). One file per token, named as the gateway and the CLI read them
# (token, admin_token, internal_token: 64 hex characters, no newline), mode 0600 in a 0700
# folder. A file that exists is never overwritten, so running it again changes nothing.
set -euo pipefail
dir=${1:?usage: docker/secrets.sh DIR}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
for name in token admin_token internal_token; do
  file=$dir/$name
  if [[ -e $file ]]; then
    if [[ ! -s $file ]]; then
      echo "error: $file exists but is empty; remove it and run this again" >&2
      exit 1
    fi
    continue
  fi
  # noclobber: a file made meanwhile by someone else is kept, and this run fails instead
  (set -o noclobber; od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
  echo "wrote $file"
done
