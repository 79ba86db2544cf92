"""The README's Python examples run as written, and its first two commands are what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_examples_run():
    # The timm recipe needs timm: tests/test_timm.py runs it (scripts/timm_check.sh).
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "import timm" not in b]
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert len(commands) >= 2
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == commands[1].strip()
