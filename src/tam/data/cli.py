"""``tam data``: prepare, describe, download and benchmark datasets.

    tam data prepare SOURCE [--out FILE]     turn a source into a cache (default: the automatic cache)
    tam data info FILE [--json]              describe a cache
    tam data download cifar10|cifar100       fetch an official archive (resumable, checksum-verified)
    tam data bench [--source SRC] [--out DIR] loader throughput -> DIR/loader.json + loader.md (default runs/loader)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tam.errors import check_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("prepare", help="turn a source (archive or folder) into a compact cache")
    p.add_argument("source", help="CIFAR-10/100 python release, Tiny-ImageNet folder or image folder (folder or archive)")
    p.add_argument("--out", help="cache file to write (default: the automatic cache in --cache-dir)")
    p.add_argument("--cache-dir", help="automatic cache folder (default: $TAM_CACHE_DIR or ~/.cache/tam)")
    p.add_argument("--overwrite", "--force", dest="force", action="store_true",
                   help="replace --out even if it holds something else")
    p.add_argument("--workers", type=int, help="decoding processes (default: CPU count, at most 8)")

    p = sub.add_parser("info", help="describe a prepared cache")
    p.add_argument("file", help="a cache written by `tam data prepare` (its --out, or the automatic cache)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")

    p = sub.add_parser("download", help="fetch an official CIFAR archive (resumable, checksum-verified)")
    p.add_argument("name", choices=("cifar10", "cifar100"), help="which archive: cifar10 or cifar100")
    p.add_argument("--dir", help="where to put it (default: <cache dir>/downloads, where `load_dataset(name)` looks)")

    p = sub.add_parser("bench", help="measure loader throughput; writes loader.json and loader.md")
    p.add_argument("--source", help="a source or cache to measure preparation on (default: synthetic tensors)")
    p.add_argument("--out", default="runs/loader", help="output folder (default: runs/loader)")
    p.add_argument("--batch-size", type=int, default=128, help="images per batch (default: 128)")
    p.add_argument("--device", default="cpu", help="where the loader puts batches: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--passes", type=int, default=3, help="timed epochs per loader")
    p.add_argument("--channels-last", action="store_true",
                   help="batches in channels_last memory format, as tam train makes them (default: contiguous NCHW)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's count, capped by the cores "
                   "the load leaves free; the choice is printed, figures taken under load are marked)")
    p.add_argument("--no-model", action="store_true", help="skip the preresnet20 step yardstick")
    p.add_argument("--note", help="a remark recorded with the results (e.g. what else ran on the machine)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out that holds another command's run or files of your own")


def run(args: argparse.Namespace) -> int:
    return {"prepare": _prepare, "info": _info, "download": _download, "bench": _bench}[args.data_command](args)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _prepare(args) -> int:
    from tam.data.cache import prepare

    if args.workers is not None:
        check_range("--workers", args.workers, low=1, integer=True)
    start = time.perf_counter()
    ds, out, written = prepare(args.source, args.out, cache_dir=args.cache_dir, force=args.force, workers=args.workers)
    c, h, w = ds.image_shape
    what = f"{ds.name} ({ds.source_format}): train {len(ds.train_labels):,}, {ds.test_split} {len(ds.test_labels):,}, " \
           f"{ds.num_classes} classes, {c}x{h}x{w}"
    if written:
        print(f"prepared {what} -> {out} ({_size(out.stat().st_size)}) in {time.perf_counter() - start:.1f} s")
    else:
        print(f"up to date: {out} already holds {what} from this source")
    return 0


def _info(args) -> int:
    from tam.data.cache import cache_info

    info = cache_info(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    classes = info["classes"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    fmt = lambda values: "(" + ", ".join(f"{v:.4f}" for v in values) + ")"  # noqa: E731
    rows = [
        ("file", f"{info['path']} ({_size(info['bytes'])})"),
        ("dataset", f"{info['name']}, read from the {info['source_format']} format"),
        ("source", info["source"]),
        ("fingerprint", info["fingerprint"]),
        ("splits", ", ".join(f"{k} {v:,}" for k, v in info["splits"].items()) + f" (held-out split: {info['test_split']})"),
        ("images", "uint8 " + "x".join(map(str, info["image_shape"]))),
        ("classes", f"{len(classes)}: {shown}"),
    ]
    if info.get("coarse_classes"):
        rows.append(("coarse classes", f"{len(info['coarse_classes'])}"))
    rows += [
        ("augment", info["augment"]),
        ("normalise", f"mean {fmt(info['mean'])}, std {fmt(info['std'])} (the constants training uses)"),
        ("train pixels", f"mean {fmt(info['pixel_mean'])}, std {fmt(info['pixel_std'])} (measured, 0-1 scale)"),
        ("", "normalise is the recipe's published constants, kept so results compare with published ones; "
             "they are not the measured statistics (the std (0.2023, 0.1994, 0.2010) that CIFAR recipes copy "
             "is smaller than the pixels' own)"),
        ("created", f"{info.get('created')} by tam {info.get('tam_version')} (cache format {info['version']})"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _download(args) -> int:
    from tam.data.cache import default_cache_dir
    from tam.data.download import download_dir, download_official

    directory = Path(args.dir) if args.dir else download_dir(default_cache_dir())
    path = download_official(args.name, directory, progress=sys.stderr.isatty())
    print(f"{args.name}: {path} (checksum verified)")
    return 0


def _bench(args) -> int:
    from tam.runfolder import RunFolder

    for flag, value in (("--batch-size", args.batch_size), ("--passes", args.passes), ("--threads", args.threads)):
        if value is not None:
            check_range(flag, value, low=1, integer=True)
    with RunFolder.claim(args.out, command="data bench", overwrite=args.overwrite, inputs=[args.source]) as run:
        json_path, md_path = _bench_into(args, run.path)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0


def _bench_into(args, out: Path) -> tuple[Path, Path]:
    import torch

    from tam.data.bench import run_bench, write_results

    from tam.bench.load import choose_threads, cores, load_average, measured_under_load

    threads = torch.get_num_threads()
    choice = choose_threads(args.threads, threads, command="tam data bench")
    try:
        result = run_bench(
            source=args.source,
            batch_size=args.batch_size,
            device=args.device,
            passes=args.passes,
            model=not args.no_model,
            channels_last=args.channels_last,
        )
        result["under_load"] = measured_under_load(load_average(), cores(), choice.under_load)
    finally:
        torch.set_num_threads(threads)
    result["threads_chosen"] = choice.describe("tam data bench")
    options = {"--source": args.source, "--batch-size": args.batch_size, "--device": args.device,
               "--passes": args.passes, "--threads": choice.threads}
    flags = [flag for flag, on in (("--channels-last", args.channels_last), ("--no-model", args.no_model)) if on]
    result["command"] = " ".join(["tam data bench", *(f"{k} {v}" for k, v in options.items() if v is not None), *flags])
    if args.note:
        result["note"] = args.note
    return write_results(result, out)
