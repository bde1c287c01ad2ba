"""Prepare a dataset ahead of time: find or download, verify, extract, encode and cache.

examples:
  python -m harness data imdb
  python -m harness data imdb --source ../shared/data/imdb/aclImdb_v1_reassembled.tar.gz
  python -m harness data imdb --data-dir /data/imdb --set length=200
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["imdb"], help="dataset to prepare")
    parser.add_argument("--source", metavar="PATH", help="the archive (aclImdb_v1.tar.gz or the reassembled copy)")
    parser.add_argument("--data-dir", metavar="DIR", help="where the archive is (default: $HARNESS_DATA_DIR, "
                        "else the per-user cache directory); only read: the extraction and the encoded "
                        "tensors go to $HARNESS_CACHE_DIR, else the per-user cache directory")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="OPTION=VALUE",
                        help="a task option that changes the encoding (vocab_size, length, padding, truncating)")


def main(args) -> int:
    from tasks import imdb_data
    from tasks.imdb import ImdbOptions

    imdb_data.use_hints("data")  # hints name --source / --data-dir, the flags this command has

    values = dict(item.split("=", 1) for item in args.sets if "=" in item)
    if args.source:
        values["source"] = args.source
    if args.data_dir:
        values["data_dir"] = args.data_dir
    options = ImdbOptions.from_mapping(values)
    encoded = imdb_data.prepare(options.source or None, options.data_dir or None,
                                vocab_size=options.vocab_size, length=options.length,
                                padding=options.padding, truncating=options.truncating,
                                sha256=options.sha256 or None)
    print("\n".join(imdb_data.summary_lines(encoded)))
    return 0
