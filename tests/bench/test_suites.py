"""Which configuration each one is compared with: the pairs that the runner times interleaved."""

from dataclasses import replace

from tam.bench.suites import fastpath_kinds, paired_references, suite_cases


def references_by_label(cases):
    return {case.label(): ref.label() if ref else None for case, ref in zip(cases, paired_references(cases))}


def test_heads_cases_of_tam_refer_to_tam_at_the_fewest_heads():
    cases = suite_cases("heads", quick=True)  # every kind at 1, 4, 16 heads
    for case, reference in zip(cases, paired_references(cases)):
        if case.kind != "tam" or case.heads == 1:
            assert reference is None
        else:
            assert reference == replace(case, heads=1)
    assert sum(ref is not None for ref in paired_references(cases)) == 2


def test_fastpath_kinds_refer_to_the_floor_at_the_same_point():
    cases = suite_cases("fastpath", quick=True)
    for case, reference in zip(cases, paired_references(cases)):
        assert reference == (None if case.kind == "floor" else replace(case, kind="floor"))
    compared = len(fastpath_kinds()) - 1  # every fastpath kind but the floor, at the quick grid's 2 points
    assert compared == 6 and sum(ref is not None for ref in paired_references(cases)) == compared * 2


def test_network_kinds_refer_to_the_network_without_attention():
    cases = suite_cases("network", quick=True)
    none = next(case for case in cases if case.kind == "none")
    assert paired_references(cases) == [None if case.kind == "none" else none for case in cases]


def test_other_suites_and_missing_references_get_none():
    assert set(references_by_label(suite_cases("resolution", quick=True)).values()) == {None}
    assert set(references_by_label(suite_cases("blocks", quick=True)).values()) == {None}
    without_floor = suite_cases("fastpath", quick=True, kinds=("tam", "cc"))
    assert paired_references(without_floor) == [None] * len(without_floor)


def test_the_fewest_heads_are_those_of_the_heads_cases_given():
    heads = [case for case in suite_cases("heads", quick=True, kinds=("tam",)) if case.heads > 1]  # 4 and 16
    network = suite_cases("network", quick=True, kinds=("tam",))  # 8 heads, another suite
    references = paired_references(heads + network)
    assert references[:2] == [None, heads[0]]  # 16 heads against 4
    assert references[2:] == [None, network[0]]  # none has no reference; tam's is none
