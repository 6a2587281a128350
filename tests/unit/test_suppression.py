"""Secondary suppression of public aggregate cells (no I/O)."""

from jejak.api.analytics import MIN_FAMILIES, Cell, suppress


def cell(*families: str) -> Cell:
    return Cell(families=set(families))


def test_a_lone_small_cell_takes_the_smallest_other_with_it() -> None:
    cells = {
        ("127501", "PKH", "2024-T1"): cell("a"),  # primary
        ("127502", "PKH", "2024-T1"): cell(*"bcdef"),  # the smallest of the rest: hidden too
        ("127503", "PKH", "2024-T1"): cell(*"ghijklm"),
    }
    hidden = suppress(cells, 4, set())
    assert hidden == {("127501", "PKH", "2024-T1"), ("127502", "PKH", "2024-T1")}
    together = set().union(*(cells[k].families for k in hidden))
    assert len(together) >= MIN_FAMILIES


def test_small_cells_that_together_hold_enough_families_need_no_more() -> None:
    cells = {
        ("127501", "PKH", "2024-T1"): cell("a", "b"),
        ("127502", "PKH", "2024-T1"): cell("c", "d", "e"),
        ("127503", "PKH", "2024-T1"): cell(*"ghijklm"),
    }
    assert suppress(cells, 4, set()) == {("127501", "PKH", "2024-T1"), ("127502", "PKH", "2024-T1")}


def test_parents_are_separate_groups_and_a_hidden_parent_hides_its_children() -> None:
    cells = {
        ("127501", "PKH", "2024-T1"): cell(*"abcdef"),
        ("127601", "PKH", "2024-T1"): cell(*"ghijkl"),  # under kota 1276, which is hidden
        ("127501", "PKH", "2024-T2"): cell(*"abcdef"),  # another period: another parent, nothing small
    }
    assert suppress(cells, 4, {("1276", "PKH", "2024-T1")}) == {("127601", "PKH", "2024-T1")}


def test_kota_cells_group_by_program_across_periods() -> None:
    """The summary's program total sums every period: its parts are all the program's kota cells."""
    cells = {
        ("1275", "BPNT", "2024-01"): cell(*"abcdef"),
        ("1275", "BPNT", "2024-02"): cell("a"),
        ("1275", "PKH", "2024-T1"): cell("x"),  # another program, alone and small
    }
    hidden = suppress(cells, None, set())
    assert ("1275", "BPNT", "2024-02") in hidden and ("1275", "BPNT", "2024-01") in hidden
    assert ("1275", "PKH", "2024-T1") in hidden
