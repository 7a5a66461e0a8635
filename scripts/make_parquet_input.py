#!/usr/bin/env python
"""Write a large Parquet file of texts to classify, for measuring `llmcls predict --input` on it (BENCHMARKS.md,
"Reading large inputs"): unique review-like texts, each 8 to 14 sentences drawn at random (seeded) from IMDB's
training reviews, with an int64 `id` column beside the `text` column, written with pyarrow's defaults (snappy) in
row groups of 100,000 rows until the file reaches the size asked for.

    python scripts/make_parquet_input.py /tmp/big.parquet 1000      # about 1 GB: 1.3 million texts
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import random
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_GROUP = 100_000


def sentences(reviews: Path) -> list[str]:
    csv.field_size_limit(sys.maxsize)
    with gzip.open(reviews, "rt", newline="", encoding="utf-8") as fh:
        return [
            s for row in csv.DictReader(fh) for s in re.split(r"(?<=[.!?])\s+", row["text"].replace("<br />", " ")) if s
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("megabytes", type=float, help="stop once the file is at least this large (10^6 bytes)")
    parser.add_argument("--reviews", type=Path, default=ROOT.parent / "shared" / "data" / "imdb" / "train.csv.gz")
    args = parser.parse_args()
    pool, rng, written = sentences(args.reviews), random.Random(0), 0
    with pq.ParquetWriter(args.out, pa.schema([("id", pa.int64()), ("text", pa.string())])) as writer:
        while not written or os.path.getsize(args.out) < args.megabytes * 1e6:
            texts = [" ".join(rng.choices(pool, k=rng.randint(8, 14))) for _ in range(ROWS_PER_GROUP)]
            writer.write_table(
                pa.table({"id": pa.array(range(written, written + len(texts)), pa.int64()), "text": texts})
            )
            written += len(texts)
    print(f"{args.out}: {written:,} texts, {os.path.getsize(args.out) / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
