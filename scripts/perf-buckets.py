#!/usr/bin/env python3
"""Where a bench thread's time goes: sorts `perf` samples into buckets by their call stack.

Profile one operation of the read bench with call stacks, then feed the samples in:

    ODBPACK_BENCH_ROUNDS=1 ODBPACK_BENCH_BACKENDS=odbpack ODBPACK_BENCH_THREADS=1 \
    ODBPACK_BENCH_STRICT=off ODBPACK_BENCH_OPS='read every object' \
    ODBPACK_BENCH_CORPORA='50 packs+MIDX' perf record -o perf.data -F 999 \
    --call-graph dwarf,16384 --inherit target/release/deps/read-<hash> --bench
    perf script -i perf.data -F tid,time,ip,sym,dso | scripts/perf-buckets.py --rate 125300

Only the busiest thread's samples count (`--threads 2` for a two-thread measurement: the
measuring threads are the busiest). A sample taken under a page fault or a system call counts
there, whichever code caused it (named beside it); any other goes to the first bucket that one
of its frames, leaf first, belongs to. With `--rate` (the operation's rate per thread, as the
bench printed it) each bucket is also given in microseconds per operation; perf's own cost makes
those larger than without it, system calls most (perf records every `mprotect`). `--from 0.6`
keeps only the last 40% of each thread's samples: the warm part of a measurement that starts
with cold caches.
"""

import argparse
import collections
import re
import sys

# Checked over the whole stack first: the kernel work a sample was in, whatever caused it.
KERNEL_ENTRIES = [
    ("page faults", re.compile(r"asm_exc_page_fault")),
    ("system calls", re.compile(r"entry_SYSCALL")),
]

# Checked leaf first: the first frame matching one of these names the bucket.
BUCKETS = [
    ("inflate", r"sirocco|libz\.so|odbpack::zlib|adler32"),
    ("malloc and free",
     r"malloc|_int_free|libc_free|cfree|unlink_chunk|mtrim|__rust_dealloc|__rdl_dealloc"),
    ("memset", r"memset"),
    ("memcpy", r"memcpy|memmove"),
    ("delta apply", r"delta::apply|git_delta_apply"),
    ("odbpack's delta-base cache", r"DeltaBaseCache"),
    ("libgit2's pack cache",
     r"cache_get|cache_add|git_pack_offsetmap|free_lowest_entry|clear_cache"),
    ("entry headers", r"parse_entry|packfile_unpack_header"),
    ("id lookup", r"SortedIds|midx|MultiPackIndex|locate|find_entry|pack_offset|nth_packed"),
    ("libgit2's odb cache", r"git_cache|cache_store|git_oid"),
    ("other kernel", r"kernel"),
]
BUCKETS = [(name, re.compile(pattern)) for name, pattern in BUCKETS]


def samples(lines):
    """(tid, time, frames) for each sample of `perf script -F tid,time,ip,sym,dso` output."""
    sample = None
    for line in lines:
        if not line.strip():
            if sample:
                yield sample
            sample = None
        elif not line.startswith("\t"):
            fields = line.split()
            sample = (fields[0], float(fields[1].rstrip(":")), [])
        elif sample is not None:
            # "<ip> <symbol> (<dso>)": drop the address.
            sample[2].append(line.strip().split(" ", 1)[-1])
    if sample:
        yield sample


def bucket(frames):
    stack = " | ".join(frames)
    for name, pattern in KERNEL_ENTRIES:
        if pattern.search(stack):
            user = next((f for f in frames if "[kernel" not in f), "?")
            return f"{name} <- {user.split(' (')[0]}"
    for frame in frames:
        for name, pattern in BUCKETS:
            if pattern.search(frame):
                return name
    return "other: " + frames[0].split(" (")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="busiest threads to count")
    parser.add_argument("--rate", type=float, help="operations per second and thread")
    parser.add_argument("--from", dest="start", type=float, default=0.0,
                        help="fraction of each thread's time to skip (0 to 1)")
    args = parser.parse_args()

    by_thread = collections.defaultdict(list)
    for tid, time, frames in samples(sys.stdin):
        if frames:
            by_thread[tid].append((time, frames))
    busiest = sorted(by_thread.values(), key=len, reverse=True)[: args.threads]
    counts = collections.Counter()
    for thread in busiest:
        first, last = thread[0][0], thread[-1][0]
        start = first + (last - first) * args.start
        counts.update(bucket(frames) for time, frames in thread if time >= start)
    total = sum(counts.values())

    def show(count, name):
        share = count / total
        per_op = f"  {share * 1e6 / args.rate:5.2f} us" if args.rate else ""
        print(f"{100 * share:5.1f}%{per_op}  {name}")

    print(f"{total} samples")
    for name, _ in KERNEL_ENTRIES:
        show(sum(c for b, c in counts.items() if b.startswith(name + " <-")), f"all {name}")
    for name, count in counts.most_common():
        if count / total >= 0.004:
            show(count, name)


if __name__ == "__main__":
    main()
