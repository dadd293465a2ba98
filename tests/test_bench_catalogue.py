"""The catalogue corpus builder (bench/catalogue.py): pure functions on a tiny made-up corpus, no server."""

from __future__ import annotations

import numpy as np
import pytest

from pintext.bench import catalogue
from pintext.bench.catalogue import Slots, catalogue_titles, compose, groups_of, split_title, twin_figures

FAUCETS = [f"{brand} {line} {handles}-Handle Kitchen Faucet in {finish}"
           for brand, line, handles, finish in [
               ("Delta", "Vero", 1, "Chrome"), ("MOEN", "Arbor", 2, "Brushed Nickel"), ("KOHLER", "Simplice", 1,
                                                                                           "Polished Chrome"),
               ("Glacier", "Bay", 2, "Oil Rubbed Bronze"), ("Pfister", "Ashfield", 1, "Stainless Steel"),
               ("Danze", "Parma", 2, "Satin Black"), ("Hansgrohe", "Talis", 1, "Matte White"),
               ("Grohe", "Eurosmart", 2, "Gold")]]
PLYWOOD = [f"{brand} {thick} in. x 4 ft. x 8 ft. {wood} Plywood (2-Pack)"
           for brand, thick, wood in [("PureBond", "1/4", "Walnut"), ("Columbia", "3/4", "Maple"),
                                      ("Handprint", "1/2", "Birch"), ("Plytanium", "5/8", "Pine"),
                                      ("Sande", "1/8", "Poplar"), ("Roseburg", "3/8", "Oak"),
                                      ("Olympic", "1/4", "Cherry"), ("Boise", "1", "Fir")]]
REAL = FAUCETS + PLYWOOD + ["Lone Widget"]


def test_split_title_finds_every_slot() -> None:
    slots = split_title("Whirlpool 1.9 cu. ft. Over the Range Convection Microwave in Stainless Steel with Sensor "
                        "Cooking-DISCONTINUED")
    assert slots == Slots(brand=("Whirlpool",), size=("1.9", "cu.", "ft."), modifiers=("Over", "the", "Range"),
                          kind=("Convection", "Microwave"), finish=("Stainless", "Steel"),
                          extra=("with", "Sensor", "Cooking"))
    assert slots.group == "microwave"
    pack = split_title("PureBond 1/4 in. x 4 ft. x 8 ft. Walnut Plywood (2-Pack)")
    assert (pack.size, pack.kind, pack.extra) == (("1/4", "in.", "x", "4", "ft.", "x", "8", "ft."),
                                                 ("Walnut", "Plywood"), ("(2-Pack)",))


def test_groups_keep_only_types_with_enough_real_titles() -> None:
    groups = groups_of(REAL)
    assert sorted(groups) == ["faucet", "plywood"]  # "Lone Widget" is one title: too few to compose from
    assert [len(members) for _, members in sorted(groups.items())] == [8, 8]


def test_compose_takes_each_slot_from_its_own_title() -> None:
    slots = [split_title(title) for title in FAUCETS[:7]]
    title = compose(slots, np.random.default_rng(0))
    # product type of the 1st, brand of the 2nd, size of the 3rd, finish of the 4th (the 5th has no extras),
    # modifiers from the 6th and 7th ("Parma", "Talis")
    head, _, tail = title.partition(" Kitchen Faucet")
    assert tail == " in Oil Rubbed Bronze"
    brand, size, *modifiers = head.split()
    assert (brand, size) == ("MOEN", "1-Handle")
    assert modifiers and set(modifiers) <= {"Parma", "Talis"}


def test_catalogue_is_real_titles_then_distinct_composed_ones_and_seeded() -> None:
    titles = list(catalogue_titles(REAL, 200, seed=3))
    assert titles[:len(REAL)] == REAL
    assert len(titles) == len(set(titles)) == 200
    assert titles == list(catalogue_titles(REAL, 200, seed=3))
    assert titles != list(catalogue_titles(REAL, 200, seed=4))
    composed = titles[len(REAL):]
    assert all(t.split()[-1] in {"Plywood", "(2-Pack)"} or "Faucet" in t for t in composed)
    pins = list(catalogue.catalogue_pins(REAL, 20))
    assert [p["id"] for p in pins[:2]] == ["c0000000", "c0000001"] and pins[0]["title"] == REAL[0]


def test_catalogue_refuses_what_it_cannot_compose() -> None:
    with pytest.raises(ValueError, match="could not compose"):
        list(catalogue_titles(["Lone Widget"] + FAUCETS, 10_000_000))


def test_twin_figures_count_near_twins_in_each_list() -> None:
    unit = np.eye(4, dtype=np.float32)
    unit = np.vstack([unit, unit[0]])  # row 4 is a twin of row 0
    unit = np.vstack([unit, np.asarray([0.6, 0.8, 0, 0], dtype=np.float32)])  # row 5: cosine 0.8 with row 1
    figures = twin_figures(unit, np.asarray([[0, 1, 2], [0, 4, 3], [1, 2, 3], [5, 1, 2]]), thresholds=(0.7, 0.98))
    assert figures["by_cosine"]["0.98"] == {"lists_without_twins": pytest.approx(3 / 4),
                                            "pins_with_a_twin": pytest.approx((2 / 3) / 4)}
    assert figures["by_cosine"]["0.7"] == {"lists_without_twins": pytest.approx(2 / 4),
                                           "pins_with_a_twin": pytest.approx((2 / 3 + 2 / 3) / 4)}
    assert figures["distinct_lists"] == 1.0
    assert twin_figures(unit, np.asarray([[0, 1], [1, 0]]))["distinct_lists"] == 0.5


def test_store_comparator_refuses_a_set_the_results_do_not_hold(tmp_path, capsys) -> None:
    """The comparator adds to a measured set; without one it says which `run` to do first and touches nothing."""
    results = tmp_path / "results.json"
    results.write_text('{"sets": [{"label": "homedepot", "pins": 3}]}\n', encoding="utf-8")
    code = catalogue.main(["store-comparator", "--set", "catalogue", "--out", str(tmp_path)])
    assert code == 1
    assert "holds no set 'catalogue'" in capsys.readouterr().err
    assert results.read_text(encoding="utf-8") == '{"sets": [{"label": "homedepot", "pins": 3}]}\n'
