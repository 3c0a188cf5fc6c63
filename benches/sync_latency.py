#!/usr/bin/env python3
"""How long the disk takes to make one small write durable, back to back and after a pause.

    python3 benches/sync_latency.py [directory]   (default: the current directory)

Each commit of a queue step ends in one write of the redo log and one fdatasync. On some
virtual disks that pair costs 30-50 us when commits follow each other closely and several
times that once the thread has worked for 50 us or more between two commits. A step that
spends 100 us of server CPU per commit then pays the slow figure on every commit, while a bare
INSERT (25 us of CPU) stays on the fast one: the gap between them in `cargo bench --bench
queue` grows far beyond their CPU. Run this in the server's data directory's file system to
see which kind of disk a benchmark ran on.
"""

import mmap
import os
import sys
import time

BLOCK = 4096
WRITES = 2000
SPAN = 32 << 20


def busy(microseconds):
    """Keeps the CPU busy (as a server thread between two commits would) for a while."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def write_and_sync(fd, block, gap_us):
    """Mean microseconds of one O_DIRECT block write plus fdatasync after `gap_us` of work."""
    spent = 0.0
    offset = 0
    for _ in range(WRITES):
        busy(gap_us)
        started = time.perf_counter()
        os.pwritev(fd, [block], offset)
        os.fdatasync(fd)
        spent += time.perf_counter() - started
        offset = (offset + BLOCK) % SPAN
    return spent / WRITES * 1e6


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    path = os.path.join(directory, f".sync_latency_{os.getpid()}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    except OSError as error:
        sys.exit(f"sync_latency: cannot create a test file in {directory}: {error.strerror}")
    try:
        os.posix_fallocate(fd, 0, SPAN)
        block = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
        block.write(b"\0" * BLOCK)
        os.fsync(fd)
        print(f"write of {BLOCK} bytes + fdatasync in {directory}, mean of {WRITES}:")
        for gap in (0, 25, 50, 100, 200, 400):
            print(f"  after {gap:>3} us of CPU work: {write_and_sync(fd, block, gap):6.0f} us")
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
