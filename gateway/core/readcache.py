"""Answers of the control plane's read calls, kept while what they were read from is unchanged.

A store entry is immutable once committed: only its ``apt.json`` is rewritten (when its
checksums settle), and an overwrite puts a new folder in place. So ``info`` is keyed on the
stat (inode, size, mtime, ctime) of every file in the entry's folder, and ``list`` on the stat
of every entry's ``apt.json``: a write by any process sharing the store (the gateway's or a
plugin's) changes the key and is seen at the next call; nothing is invalidated by hand. A key
costs one ``stat`` per file, instead of parsing the config, the tokenizer and every safetensors
header and building the answer again (bench/bench_control.py).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from apt_model.store import META_FILE, NAME_RE, Kind, Store

Version = tuple


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


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
        """Every entry of ``kind`` with the stat of its apt.json."""
        folder = self.store.root / kind
        try:
            with os.scandir(folder) as it:
                names = [d.name for d in it if not d.name.startswith(".") and NAME_RE.match(d.name)]
        except FileNotFoundError:
            return ()
        stats = ((n, _stat(os.path.join(folder, n, META_FILE))) for n in names)
        return tuple(sorted((n, s) for n, s in stats if s is not None))

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
