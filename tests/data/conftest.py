"""Setup for the data tests: the format builders importable as `tam_data_builders`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
