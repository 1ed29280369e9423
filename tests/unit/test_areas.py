import pytest

from services.contracts.areas import area, children, level_of, parent_chain, village_code_problem


def test_levels_and_parent_chain() -> None:
    assert [level_of(c) for c in ("TH", "49", "4901", "490101", "49010101")] == [
        "country",
        "province",
        "district",
        "subdistrict",
        "village",
    ]
    assert level_of("4") is None
    assert level_of("4901a") is None
    assert parent_chain("49010101") == ("TH", "49", "4901", "490101", "49010101")
    assert parent_chain("TH") == ("TH",)
    with pytest.raises(ValueError, match="not an area code"):
        parent_chain("123")


def test_thai_and_english_names_at_every_level() -> None:
    assert area("TH") is not None
    province = area("49")
    assert province is not None
    assert (province.name_th, province.name_en) == ("มุกดาหาร", "Mukdahan")
    district = area("4901")
    assert district is not None
    assert (district.name_en, district.parent) == ("Mueang Mukdahan", "49")
    village = area("49010101")
    assert village is not None
    assert (village.name_th, village.name_en, village.parent) == ("คำตุนาง", "Moo 1", "490101")


def test_municipal_units_are_known_inside_a_known_district() -> None:
    unit = area("250962")
    assert unit is not None
    assert unit.name_en.startswith("Municipal unit 62")
    assert village_code_problem("25096206") is None
    gazetteer_village = area("25096206")
    assert gazetteer_village is not None
    assert gazetteer_village.name_th == "ชุมชนบ้านต้นโพธิ์"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("4901010", "must be 8 digits"),
        ("4901010a", "must be 8 digits"),
        ("99010101", "unknown province 99"),
        ("49990101", "unknown district 4999"),
        ("49014901", "unknown subdistrict 490149"),
        ("49010100", "village number 00"),
    ],
)
def test_village_code_problems(code: str, reason: str) -> None:
    problem = village_code_problem(code)
    assert problem is not None
    assert reason in problem
    assert area(code) is None


@pytest.mark.parametrize("code", ["TH", "49", "4901", "490101"])
def test_children_point_back_to_their_parent(code: str) -> None:
    found = children(code)
    assert found
    assert all(child.parent == code for child in found)
    assert len({child.code for child in found}) == len(found)


def test_country_has_77_provinces() -> None:
    assert len(children("TH")) == 77
