"""An experiment of the thesis as a file: a base training config, a grid of cells, budgets, seeds.

``configs/reproduce/<name>.yaml``::

    title: CIFAR-10 ...
    dataset: cifar10                      # the dataset name the data source must have
    source: ../shared/data/cifar10-jpeg.tar.gz   # default source, relative to the repository root
    train: {model: preresnet56, attention_blocks: [0, 1, 1]}   # TrainConfig keys shared by every cell
    grid:                                 # cells: the product of each entry's value lists, entries joined
      - {attention: [none]}
      - {attention: [nl, tam], heads: [1, 2, 4, 8]}
    budgets:                              # TrainConfig overrides per budget; may replace `grid` and `seeds`
      smoke: {epochs: 1, limit_train: 200, seeds: 1}
      full: {seeds: 3}

Cost experiments name bench suites instead of a grid: ``bench: {suites: [heads, resolution]}``; their
``smoke`` budget runs the quick grids.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from tam.errors import UserError
from tam.train.config import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS_DIR = REPO_ROOT / "configs" / "reproduce"
BUDGETS = ("smoke", "cpu", "gpu", "full")
# Grid keys that name a cell; every other grid key is appended as key=value.
NAMED_KEYS = ("attention", "heads")


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid: the TrainConfig values that set it apart, and its folder name."""

    values: dict

    @property
    def name(self) -> str:
        attention = self.values.get("attention", "none")
        parts = [attention] if attention == "none" else [attention, f"h{self.values.get('heads', 1)}"]
        for key, value in self.values.items():
            if key in NAMED_KEYS:
                continue
            if isinstance(value, dict):  # attention_options: name the cell by the options themselves
                parts += [f"{k}={v}" for k, v in value.items()]
            else:
                parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
        return "-".join(parts)


@dataclass
class Experiment:
    name: str
    title: str
    dataset: str | None = None
    source: str | None = None
    train: dict = field(default_factory=dict)
    grid: list[dict] = field(default_factory=list)
    budgets: dict[str, dict] = field(default_factory=dict)
    bench: dict | None = None

    def budget(self, budget: str) -> dict:
        """The overrides of ``budget`` (TrainConfig keys, plus optional ``grid`` and ``seeds``)."""
        if budget not in BUDGETS:
            raise UserError(f"--budget: {budget!r} is not one of {', '.join(BUDGETS)}")
        return dict(self.budgets.get(budget) or {})

    def cells(self, budget: str) -> list[Cell]:
        """The grid of ``budget`` expanded, in file order.

        Attention options equal to the layer's defaults are dropped, so that one model has one cell name and one
        config in every experiment: the geometry ablation's Non-local ``softmax``/``full`` cell is ``nl-h1``,
        the very run of ``cifar10``'s grid (``tam reproduce --reuse`` takes it from there).
        """
        grid = self.budget(budget).get("grid", self.grid)
        where = f"experiment {self.name}" + (f", budget {budget}" if "grid" in self.budget(budget) else "")
        if not isinstance(grid, list):
            raise UserError(f"{where}: the grid must be a list of entries like {{attention: [nl, tam]}}, "
                            f"got {type(grid).__name__}")
        cells = []
        for number, entry in enumerate(grid, 1):
            if not isinstance(entry, dict) or not entry:
                raise UserError(f"{where}: grid entry {number} must map keys to lists of values, got {entry!r}")
            for key, values in entry.items():
                if not isinstance(values, list) or not values:
                    raise UserError(f"{where}: grid entry {number}, key {key}: expected a non-empty list of values "
                                    f"(e.g. {key}: [{values!r}]), got {values!r}")
            keys = list(entry)
            for values in itertools.product(*(entry[key] for key in keys)):
                cells.append(Cell(_without_defaults(dict(zip(keys, values)))))
        names = [cell.name for cell in cells]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise UserError(f"experiment {self.name}: the grid repeats cells {duplicates}")
        return cells

    def base_config(self, budget: str) -> dict:
        """TrainConfig values shared by every cell of ``budget``."""
        overrides = {k: v for k, v in self.budget(budget).items() if k not in ("grid", "seeds")}
        return {**self.train, **overrides}

    def seeds(self, budget: str) -> int:
        return int(self.budget(budget).get("seeds", 1))


def _without_defaults(values: dict) -> dict:
    """Cell ``values`` with the ``attention_options`` that equal the layer's defaults removed."""
    from tam.layers import ATTENTION_REGISTRY, attention_option_defaults

    kind, options = values.get("attention", "none"), values.get("attention_options")
    if options is None or kind not in ATTENTION_REGISTRY:
        return values
    defaults = attention_option_defaults(kind)
    kept = {key: value for key, value in options.items() if key not in defaults or defaults[key] != value}
    values = {key: value for key, value in values.items() if key != "attention_options"}
    return {**values, "attention_options": kept} if kept else values


def experiment_names() -> list[str]:
    return sorted(path.stem for path in EXPERIMENTS_DIR.glob("*.yaml"))


def load_experiment(name_or_path: str) -> Experiment:
    """An experiment by name (``configs/reproduce/<name>.yaml``) or by the path of its YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"no experiment {name_or_path!r}; known: {', '.join(experiment_names())} "
                            f"(or give the path of an experiment YAML file)")
    values = load_yaml(path)
    known = {"title", "dataset", "source", "train", "grid", "budgets", "bench"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not values.get("grid") and not values.get("bench"):
        raise UserError(f"{path}: an experiment needs a `grid` of training cells or a `bench` section")
    return Experiment(name=path.stem, title=values.get("title", path.stem), **{
        key: values[key] for key in ("dataset", "source", "train", "grid", "budgets", "bench") if key in values})
