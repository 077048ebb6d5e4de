"""Peak memory of prepare on a Criteo-format file: streaming path vs reading the table whole.

``python bench/prepare_memory.py --rows 1000000 [--input FILE] [--paths stream whole]``

Each path runs in a fresh subprocess (``prepare --format criteo`` with min-count 10); printed:
wall seconds, CPU seconds and peak RSS (``ru_maxrss``), next to the file size. ``whole`` is the
in-memory path (the table parsed whole, then encoded), as prepare ran before streaming.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD = r"""
import json, resource, sys, time
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import read_criteo, stream_criteo
path, out, which = sys.argv[1:4]
wall, cpu = time.perf_counter(), time.process_time()
raw = stream_criteo(path) if which == "stream" else read_criteo(path)
fm = prepare(raw, out, PrepareConfig(min_count=10))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rows": fm.metadata["rows"]}))
"""


def main(argv: list[str] | None = None) -> int:
    from adass_ray.data.synthetic import write_criteo_tsv

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--input", help="an existing Criteo TSV (else one is generated)")
    parser.add_argument("--paths", nargs="+", default=["stream", "whole"],
                        choices=["stream", "whole"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="adass-prepmem-") as tmp:
        path = Path(args.input) if args.input else Path(tmp) / "criteo.tsv"
        if not args.input:
            write_criteo_tsv(path, args.rows, seed=0)
        print(f"file: {path.stat().st_size / 2**20:,.0f} MiB Criteo TSV")
        for which in args.paths:
            out = Path(tmp) / f"out-{which}"
            res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out), which],
                                 check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{which:<7} {r['rows']:>11,} rows  {r['wall']:7.1f} s wall  "
                  f"{r['cpu']:7.1f} s CPU  peak RSS {r['peak'] / 2**30:6.2f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
