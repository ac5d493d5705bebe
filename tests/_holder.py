"""Another process holding a file's lock, as a second training driver would."""

from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import contextmanager

_SCRIPT = """
import sys
from meanfield._files import locked
path, head, tail = sys.argv[1:4]
with open(path, "a", encoding="utf-8") as fh, locked(fh):
    fh.write(head)
    fh.flush()
    print("held", flush=True)
    sys.stdin.read()  # until the test lets go
    fh.write(tail)
    fh.flush()
"""


@contextmanager
def held_by_another_process(path, head: str = "", tail: str = ""):
    """A process that locks ``path`` (as :func:`meanfield._files.locked`), appends ``head``
    and holds the lock until ``release()`` (or ``kill()``) is called on what this yields;
    it then appends ``tail`` and lets go. ``release(after=s)`` lets go s seconds later,
    from a timer, so that the test can meanwhile block on the lock."""
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(path), head, tail],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    class Holder:
        @staticmethod
        def release(after: float = 0.0):
            def close():
                proc.stdin.close()
            threading.Timer(after, close).start() if after else close()

        @staticmethod
        def kill():
            proc.kill()
            proc.wait(30)

    try:
        assert proc.stdout.readline().strip() == "held", "the holding process did not start"
        yield Holder
    finally:
        if proc.poll() is None:
            if not proc.stdin.closed:
                proc.stdin.close()
            proc.wait(30)
        proc.stdout.close()
