"""scripts/bench_gpu.sh, checked without a GPU: its dry run prints the commands, in order, and every `tam`
command among them parses with tam's own parser."""

import os
import shlex
import subprocess
from pathlib import Path

from tam.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_gpu.sh"


def test_the_gpu_script_runs_the_cuda_tests_first_then_the_dispatch_calibration(tmp_path):
    env = {**os.environ, "TAM_GPU_SCRIPT_DRY_RUN": "1"}
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "gpu")], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    commands = [line for line in out if " -m pytest " in line or " -m tam.cli " in line]
    assert "TAM_TEST_DEVICE=cuda" in commands[0] and "tests/layers" in commands[0]
    parsed = []
    for line in commands[1:]:
        words = shlex.split(line)
        parsed.append(build_parser().parse_args(words[words.index("tam.cli") + 1:]))
    assert all(args.command == "bench" and args.device == "cuda" for args in parsed)
    assert [args.suite for args in parsed[:2]] == [["dispatch"], ["dispatch"]]
    assert [args.amp for args in parsed[:2]] == ["none", "bf16"]
    assert not (tmp_path / "gpu").exists()  # a dry run writes nothing
