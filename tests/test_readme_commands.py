"""Every fenced command block of the README runs, as written, in a fresh copy of the repository.

The copy holds the repository's files (tracked and new, not ignored ones) and, beside it, ``../shared/data/
cifar10-jpeg.tar.gz`` as a small archive of the same layout (10 classes, JPEG, ``train/`` and ``test/``), so that
the blocks run in seconds; caches go to a temp ``TAM_CACHE_DIR``. The blocks run in order, each as one bash
script in the copy's root, as in one terminal: a later block sees what an earlier one wrote, and runs
activated once an earlier one has sourced ``.venv/bin/activate``. Only these substitutions are made
(``SUBSTITUTIONS``), each a budget or an environment this test cannot give:

- the setup prefix ``python3 -m venv .venv && .venv/bin/pip install ... &&`` is dropped: the test makes ``.venv``
  itself, whose ``bin/`` holds ``python``, ``tam`` and ``activate`` for this interpreter and the copy's ``src``
  (installing torch per test run is not possible offline);
- ``tam bench --quick`` measures one suite, two kinds, no pairs, a 10 ms budget;
- ``tam bench --suite segmentation precision`` runs their ``--quick`` grids for TAM alone, a 10 ms budget;
- ``python -m pytest -q`` runs one test file (the whole suite runs in CI);
- ``tam train`` trains 1 epoch on 64 images, tests on 32;
- a line that needs a GPU (``--device cuda``, ``torchrun``) runs only where CUDA is; elsewhere its arguments
  are parsed and its config resolved, so that a stale flag or config path still fails here.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = re.compile(r"python3 -m venv \.venv && \.venv/bin/pip install -q torch==[\d.]+ -e (?:\.|'\.\[dev\]') && ")
SUBSTITUTIONS = [
    (SETUP, ""),
    (re.compile(r"tam bench --quick"), "tam bench --quick --suite blocks --kinds floor tam --no-pairs --budget 0.01"),
    (re.compile(r"tam bench --suite segmentation precision"),
     "tam bench --suite segmentation precision --quick --kinds tam --budget 0.01"),
    (re.compile(r"python -m pytest -q$", re.M), "python -m pytest -q tests/layers/test_module_protocol.py"),
    (re.compile(r"^(tam train .*)$", re.M), r"\1 --epochs 1 --limit-train 64 --limit-test 32 --batch-size 32"),
]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def command_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def needs_gpu(line: str) -> bool:
    return "--device cuda" in line or line.lstrip().startswith("torchrun")


def fresh_copy(tmp_path: Path) -> Path:
    """The repository's files as a clone has them, the small CIFAR-10 archive beside it, and a ``.venv``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    repo = tmp_path / "repo"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    write_small_cifar10(tmp_path / "shared" / "data" / "cifar10-jpeg.tar.gz")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    env = f'export PYTHONPATH="{repo / "src"}"\n'
    for name, target in (("python", f'exec "{sys.executable}" "$@"'), ("tam", f'exec "{sys.executable}" -m tam.cli "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{env}{target}\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    return repo


def write_small_cifar10(path: Path) -> None:
    from data.tam_data_builders import imagefolder_files, write

    files, _ = imagefolder_files(classes=CLASSES, train=8, test=4, size=(32, 32), fmt="JPEG")
    path.parent.mkdir(parents=True)
    write(files, path, "tar.gz")


def substituted(block: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        block = pattern.sub(replacement, block)
    return block


def check_gpu_line(line: str, repo: Path) -> None:
    """Where no GPU is: the line's tam arguments parse and, for training, its config resolves."""
    from tam.cli import build_parser
    from tam.train.cli import resolve_config

    words = shlex.split(line.split(" #")[0])
    words = words[words.index("tam.cli") + 1:] if "tam.cli" in words else words[words.index("tam") + 1:]
    args = build_parser().parse_args(words)
    if args.command == "train":
        cwd = os.getcwd()
        try:
            os.chdir(repo)
            config = resolve_config(args)
        finally:
            os.chdir(cwd)
        assert (repo / config.data).exists(), f"{line}: its data {config.data} is not where the README says"


def test_substitutions_each_change_the_readme():
    text = "\n".join(command_blocks())
    for pattern, _ in SUBSTITUTIONS:
        assert pattern.search(text), f"{pattern.pattern} no longer matches a README command: update the table"


def test_every_readme_command_block_runs_on_a_fresh_copy(tmp_path):
    import torch

    repo = fresh_copy(tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TAM_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    gpu = torch.cuda.is_available()
    blocks = command_blocks()
    assert len(blocks) >= 4
    committed = {path: path.stat().st_mtime_ns for path in (repo / "results").rglob("*") if path.is_file()}
    activated = False
    for number, block in enumerate(blocks, 1):
        script = ["source .venv/bin/activate"] if activated else []
        activated = activated or "source .venv/bin/activate" in block
        for line in substituted(block).splitlines():
            if needs_gpu(line) and not gpu:
                check_gpu_line(line, repo)
            else:
                script.append(line)
        done = subprocess.run(["bash", "-e", "-c", "\n".join(script)], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"README command block {number} failed:\n{block}\n{done.stdout}\n{done.stderr}"
    # tam data prepare wrote the one cache that tam train then used
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert (repo / "runs" / "bench-quick" / "results.md").is_file() and (repo / "curves.png").is_file()
    # no command wrote into results/, which holds the committed runs the README cites
    assert {path: path.stat().st_mtime_ns for path in (repo / "results").rglob("*") if path.is_file()} == committed
