"""Secondary suppression of public aggregate cells (no I/O)."""

from jejak.api.analytics import MIN_FAMILIES, Cell, suppress, suppressed_because


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


def test_kota_cells_hide_only_small_ones() -> None:
    """The summary's program totals add up published kota cells only: a small
    period hides alone, and no large period leaves the city chart with it."""
    cells = {
        ("1275", "BPNT", "2024-01"): cell(*"abcdef"),
        ("1275", "BPNT", "2024-02"): cell("a"),
        ("1275", "PKH", "2024-T1"): cell("x"),  # another program, alone and small
    }
    assert suppress(cells, None, set()) == {("1275", "BPNT", "2024-02"), ("1275", "PKH", "2024-T1")}


def test_under_a_hidden_parent_only_the_smallest_child_hides() -> None:
    """A parent hidden to protect another: publishing all its children would give it
    back, so one must hide too, the smallest; the others stay published."""
    cells = {
        ("127501", "BPNT", "2024-01"): cell(*"abcdefghij"),
        ("127502", "BPNT", "2024-01"): cell(*"klmnopq"),  # the smallest: hidden
        ("127503", "BPNT", "2024-01"): cell(*"rstuvwxyz"),
    }
    assert suppress(cells, 4, {("1275", "BPNT", "2024-01")}) == {("127502", "BPNT", "2024-01")}


def test_the_reason_tells_a_small_cell_from_a_protecting_one() -> None:
    assert suppressed_because(cell(*"abcd")) == "small"
    assert suppressed_because(cell(*"abcde")) == "protects_another"
