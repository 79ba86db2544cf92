"""Analytic FLOPs against FlopCounterMode on the real blocks, and the suites' grids."""

import pytest

from tam.bench.cost import analytic_flops
from tam.bench.measure import count_flops
from tam.bench.suites import SUITES, Case, bench_kinds, fastpath_kinds, suite_cases
from tam.bench.workload import build_workload


@pytest.mark.parametrize("kind", [k for k in bench_kinds() if k != "cc"])  # cc: below
@pytest.mark.parametrize("heads,blocks", [(1, 1), (4, 2)])
def test_counted_flops_match_the_formulas(kind, heads, blocks):
    case = Case("heads", kind, heads=heads, side=6, channels=16, batch=2, blocks=blocks)
    counted, _ = count_flops(build_workload(case).forward)
    assert counted == analytic_flops(case)


@pytest.mark.parametrize("channels,side", [(16, 8), (256, 2)])
def test_tam_count_follows_the_form_the_layer_dispatches_to(channels, side):
    case = Case("heads", "tam", heads=2, side=side, channels=channels, batch=2)
    workload = build_workload(case)
    counted, _ = count_flops(workload.forward)
    assert counted == analytic_flops(case)


def test_both_tam_forms_are_exercised():
    from tam.layers import TransposedAttention

    assert TransposedAttention(16, heads=2).choose_form((8, 8)).form == "gram"
    assert TransposedAttention(256, heads=2).choose_form((2, 2)).form == "transposed"


def test_criss_cross_counts_itself_twice():
    # The kernel scores each position against its whole row and column (H+W keys, itself masked once),
    # where the formula counts the H+W−1 distinct ones.
    case = Case("heads", "cc", heads=2, side=6, channels=16, batch=2)
    counted, _ = count_flops(build_workload(case).forward)
    n, c, e, passes = 36, 16, 8, 2
    assert analytic_flops(case) == 2 * 2 * passes * (4 * n * c * e + 2 * n * 11 * e)
    assert counted == 2 * 2 * passes * (4 * n * c * e + 2 * n * 12 * e)


def test_tam_flops_do_not_grow_with_heads_and_non_local_flops_dwarf_them():
    def flops(kind, heads):
        return analytic_flops(Case("heads", kind, heads=heads, side=32, channels=64, batch=1))

    assert flops("tam", 16) <= flops("tam", 1) < flops("nl", 1) == flops("nl", 16)


def test_no_formula_for_a_network():
    assert analytic_flops(Case("network", "tam", 1, 32, 3, 32, 3, "preresnet20", (1, 1, 1))) is None


def test_suites_cover_every_kind_and_the_required_sizes():
    for suite in SUITES:
        for quick in (False, True):
            cases = suite_cases(suite, quick=quick)
            assert {c.kind for c in cases} >= (set(fastpath_kinds()) if suite == "fastpath" else set(bench_kinds()))
    quick_heads = suite_cases("heads", quick=True)
    assert {c.heads for c in quick_heads} >= {1, 16} and 32 in {c.side for c in quick_heads}
    assert {c.heads for c in suite_cases("heads")} == {1, 2, 4, 8, 16}
    assert {c.side for c in suite_cases("resolution")} >= {8, 16, 32, 56}
    assert {c.blocks for c in suite_cases("blocks")} == {1, 2, 3, 4}
    fastpath = suite_cases("fastpath")
    assert {(c.side, c.heads) for c in fastpath} == {(s, h) for s in (16, 32, 56) for h in (1, 8, 16)}
    assert {c.heads for c in suite_cases("network")} == {8}
    assert "none" in {c.kind for c in suite_cases("network", kinds=("tam",))}


def test_suites_reject_unknown_names():
    with pytest.raises(ValueError, match="suite"):
        suite_cases("speed")
    with pytest.raises(ValueError, match="kinds"):
        suite_cases("heads", kinds=("tam", "mamba"))


def test_case_round_trips_through_a_dict():
    case = Case("network", "tam", 1, 32, 3, 32, 3, "preresnet20", (1, 1, 1))
    assert Case.from_dict(case.to_dict()) == case
