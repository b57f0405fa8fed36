#!/usr/bin/env python3
"""Generates the files-scanner benchmark tree: 100,000 files in 50 x 20 directories, mostly
1-16 KiB plus 1,000 files of 1 MiB (~1.9 GB). Content is deterministic pseudo-random: every
file is a unique header plus a slice of one seeded pool, so it is fast to write and every
file hashes differently. Usage: gen_tree.py DEST"""

import os
import random
import sys

TOP, SUB, PER_DIR = 50, 20, 100
BIG_EVERY = 100  # every 100th file is 1 MiB -> 1,000 big files
BIG = 1 << 20


def main() -> None:
    dest = sys.argv[1]
    rng = random.Random(20240501)
    pool = rng.randbytes(4 * BIG)
    n = 0
    for t in range(TOP):
        for s in range(SUB):
            d = os.path.join(dest, f"d{t:02d}", f"s{s:02d}")
            os.makedirs(d, exist_ok=True)
            for f in range(PER_DIR):
                size = BIG if n % BIG_EVERY == BIG_EVERY - 1 else rng.randint(1024, 16 * 1024)
                header = f"file {n}\n".encode()
                off = rng.randrange(0, len(pool) - size)
                with open(os.path.join(d, f"f{f:03d}.dat"), "wb") as fh:
                    fh.write(header)
                    fh.write(pool[off : off + size - len(header)])
                n += 1
    print(f"generated {n} files under {dest}")


if __name__ == "__main__":
    main()
