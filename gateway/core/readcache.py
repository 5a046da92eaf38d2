"""Answers of the control plane's read calls, kept while what they were read from is unchanged.

A store entry is immutable once committed: only its ``apt.json`` is rewritten (when its
checksums settle), and an overwrite puts a new folder in place. So ``info`` is keyed on the
stat (inode, size, mtime, ctime, links) of every file in the entry's folder, and ``list`` on the kind
folder's change token (``apt_model.store.fs.mark_changed``), which every store writer replaces
after each change, in whichever process (the gateway's or a plugin's) made it, plus the kind
folder's own stat, which also moves when an entry is added or removed by hand. A write is seen
at the next call; nothing is invalidated here. An ``info`` key costs one ``stat`` per file and a
``list`` key one ``stat`` and one small read, whatever the number of entries, instead of
parsing configs, tokenizers and safetensors headers again (bench/bench_control.py).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from apt_model.store import META_FILE, Kind, Store
from apt_model.store.fs import change_token

Version = tuple


def _stat(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    # st_nlink: a folder's count moves with each subfolder added or removed, even when two
    # changes fall within one tick of the file system's coarse clock
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink


class ReadCache:
    def __init__(self, store: Store, max_answers: int = 4096):
        self.store = store
        self.max_answers = max_answers
        self._answers: OrderedDict[tuple, tuple[Version, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def entry_version(self, kind: Kind, name: str) -> Version | None:
        """Every file of the entry's folder with its stat; None when the entry does not exist."""
        folder = self.store.path(kind, name)
        try:
            with os.scandir(folder) as it:
                files = sorted((d.name, _stat(d.path)) for d in it)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return tuple(files) if any(n == META_FILE for n, _ in files) else None

    def listing_version(self, kind: Kind) -> Version:
        """The kind folder's change token and stat (read before the answer is computed, so an
        answer is never kept under a key newer than what it read)."""
        folder = self.store.root / kind
        return _stat(str(folder)), change_token(folder)

    def kept(self, question: tuple, version: Version | None) -> Any | None:
        """The answer to ``question`` if one computed at ``version`` is kept, else None."""
        if version is None:
            return None
        with self._lock:
            hit = self._answers.get(question)
            if hit is None or hit[0] != version:
                return None
            self._answers.move_to_end(question)
            return hit[1]

    def keep(self, question: tuple, version: Version | None, value: Any) -> Any:
        """Keep ``value`` as the answer to ``question`` at ``version`` (nothing is kept for an
        entry that does not exist: it is asked again); returns it."""
        if version is not None:
            with self._lock:
                self._answers[question] = (version, value)
                self._answers.move_to_end(question)
                while len(self._answers) > self.max_answers:
                    self._answers.popitem(last=False)
        return value
