#!/usr/bin/python3
"""fsyncrate.py: the spool file system's durable-write rate (a benchmark,
not a test). In a scratch directory under DIR, for about SECONDS each:

  commit     write 4 KB to a new file, fsync it, rename it into another
             directory, fsync that directory: what one message's commit
             costs when no fsync is shared between sessions;
  fsync      write 4 KB to a new file and fsync it;
  fdatasync  append 4 KB to one file and fdatasync it (a journal's rate).

Usage: fsyncrate.py DIR [SECONDS] [--json FILE]
Prints one line; the scratch directory is removed.
"""
import json
import os
import shutil
import sys
import tempfile
import time

LIMIT = 100000      # operations per test, whatever the time


def rate(fn, secs):
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs and n < LIMIT:
        fn(n)
        n += 1
    return n / (time.monotonic() - t0)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = None
    if "--json" in sys.argv:
        out = sys.argv[sys.argv.index("--json") + 1]
        args = [a for a in args if a != out]
    if not args:
        sys.exit(__doc__)
    parent = args[0]
    secs = float(args[1]) if len(args) > 1 else 3.0
    d = tempfile.mkdtemp(prefix="fsyncrate.", dir=parent)
    try:
        os.makedirs(d + "/tmp")
        os.makedirs(d + "/q")
        data = b"x" * 4096
        qd = os.open(d + "/q", os.O_RDONLY)

        def commit(n):
            p = "%s/tmp/%d" % (d, n)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.rename(p, "%s/q/%d" % (d, n))
            os.fsync(qd)

        def fsync(n):
            fd = os.open("%s/tmp/f%d" % (d, n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)

        jfd = os.open(d + "/journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def fdatasync(n):
            os.write(jfd, data)
            os.fdatasync(jfd)

        res = {"dir": parent, "fstype": None, "seconds": secs,
               "commit_per_s": round(rate(commit, secs), 1),
               "fsync_per_s": round(rate(fsync, secs * 2 / 3), 1),
               "fdatasync_per_s": round(rate(fdatasync, secs * 2 / 3), 1)}
        os.close(qd)
        os.close(jfd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    try:
        with open("/proc/self/mountinfo") as fh:
            best = ""
            for line in fh:
                f = line.split()
                mnt, fstype = f[4], f[f.index("-") + 1]
                if os.path.realpath(parent).startswith(mnt) and len(mnt) >= len(best):
                    best, res["fstype"] = mnt, fstype
    except (OSError, ValueError, IndexError):
        pass
    print("raw file system (%s, %s): %.0f/s write+fsync+rename+dir fsync; %.0f/s write+fsync; "
          "%.0f/s append+fdatasync" % (parent, res["fstype"], res["commit_per_s"], res["fsync_per_s"],
                                       res["fdatasync_per_s"]))
    if out:
        with open(out, "w") as fh:
            json.dump(res, fh)


if __name__ == "__main__":
    main()
