"""The category table: the shipped default, a city's own file, and the [events] section."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cim.errors import ConfigError, NotFoundError
from layers.events.categories import STAGES, load_categories
from layers.events.config import events_config
from layers.events.worktime import WorkLimit


def test_default_table_follows_the_standard_classes() -> None:
    table = load_categories()
    assert 30 <= len(table) <= 80
    names = {(c.cls, c.name) for c in table.categories}
    for cls, name in [("部件", "公用设施"), ("部件", "道路交通"), ("部件", "市容环境"),
                      ("部件", "园林绿化"), ("部件", "房屋土地"), ("事件", "市容环境"),
                      ("事件", "宣传广告"), ("事件", "施工管理"), ("事件", "突发事件"),
                      ("事件", "街面秩序")]:  # fmt: skip
        assert (cls, name) in names
    for sub in table:
        assert set(sub.limits) == set(STAGES) and sub.department
        assert sub.code.startswith(sub.category)
    rubbish = table.get("SJ0102")
    assert (rubbish.name, rubbish.cls, rubbish.department) == ("暴露垃圾", "事件", "sanitation")
    assert rubbish.limits["handle"] == WorkLimit(4, "h")
    assert rubbish.limits["file"] == WorkLimit(1, "h")  # from [defaults]
    assert table.get("BJ0403").limits["handle"] == WorkLimit(5, "d")  # green space: 5 days
    assert table.get("SJ0403").limits["dispatch"] == WorkLimit(30, "min")  # 突发事件 level
    with pytest.raises(NotFoundError):
        table.get("SJ9999")


def test_sensor_keywords() -> None:
    table = load_categories()
    assert table.for_sensor("River water level").code == "SJ0405"
    assert table.for_sensor("燃气浓度").code == "BJ0110"
    assert table.for_sensor("something else").code == "SJ0499"


CITY_TABLE = """
[defaults]
file = "2h"
dispatch = "2h"
handle = "1d"
check = "1d"
close = "2h"

[[category]]
code = "X1"
name = "道路"
class = "事件"
department = "roads"
sub = [{ code = "X101", name = "坑洼", handle = "3d" }]
"""


def test_city_table_from_city_toml(tmp_path: Path) -> None:
    (tmp_path / "cats.toml").write_text(CITY_TABLE, encoding="utf-8")
    (tmp_path / "city.toml").write_text(
        '[events]\ncategories = "cats.toml"\nwork_hours = ["09:00-12:00", "14:00-17:00"]\n',
        encoding="utf-8",
    )
    cfg = events_config(tmp_path / "city.toml")
    assert [s.code for s in cfg.table] == ["X101"]
    assert cfg.table.get("X101").limits["handle"] == WorkLimit(3, "d")
    assert cfg.schedule.day_length == dt.timedelta(hours=6)
    assert cfg.table.for_sensor("water level") is None  # no [sensor] default
    default = events_config(None)
    assert len(default.table) > 30 and default.approaching == 0.2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('class = "事件"', 'class = "事情"'), "class must be 部件 or 事件"),
        (('handle = "3d"', 'handle = "3 weeks"'), "X101 handle"),
        (('file = "2h"\n', ""), "no time limit for file"),
        (('name = "坑洼"', 'name = "坑洼", colour = "red"'), "unknown key"),
        (('department = "roads"\n', ""), "X101: no department"),
        (("[[category]]", "[sensor]\ndefault = 'X999'\n[[category]]"), "no subcategory code"),
        (
            ('sub = [{ code = "X101"', 'sub = [{ code = "X101", name = "a" }, { code = "X101"'),
            "used twice",
        ),
    ],
)
def test_bad_tables_are_refused_with_the_file(tmp_path: Path, change: tuple, message: str) -> None:
    path = tmp_path / "cats.toml"
    path.write_text(CITY_TABLE.replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_categories(path)
    assert str(path) in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_categories(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[[category]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a valid TOML"):
        load_categories(tmp_path / "bad.toml")
    (tmp_path / "city.toml").write_text("[events]\napproaching = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="approaching must be between 0 and 1"):
        events_config(tmp_path / "city.toml")
    (tmp_path / "city.toml").write_text('[events]\nwork_hours = ["9-12"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="work_hours"):
        events_config(tmp_path / "city.toml")
