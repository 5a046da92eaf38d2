"""The model store: ``APT_HOME/models/<name>/`` and ``APT_HOME/datasets/<name>/``.

- ``api.py``: ``Store``, the public API (create, read, list, remove, verify, recover);
- ``entry.py``: names, the ``Entry`` record (apt.json), which files an entry has;
- ``fs.py``: sha256, hashing copies, fsync, atomic JSON writes, each kind's change token;
- ``locks.py``: the flock files in ``APT_HOME/.locks`` that writers and readers share;
- ``settle.py``: entries that get their fsync and sha256 after they appear.
"""

from apt_model.store.api import Store
from apt_model.store.entry import META_FILE, NAME_RE, Entry, Kind, validate_name
from apt_model.store.fs import copy_hashed, copy_unhashed, file_table, fsync_dir, sha256_file, write_json_atomic
from apt_model.store.settle import Settle, boot_id

__all__ = [
    "META_FILE", "NAME_RE", "Entry", "Kind", "Settle", "Store", "boot_id", "copy_hashed", "copy_unhashed",
    "file_table", "fsync_dir", "sha256_file", "validate_name", "write_json_atomic",
]
