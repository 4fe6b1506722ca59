"""The SensorThings API against the FROST Python client (``frost-sta-client``), used
unchanged, on SQLite and on PostgreSQL: the compatibility proof."""

from __future__ import annotations

import frost_sta_client as fsc
import pytest
import requests
from frost_sta_client.model.ext import data_array_document, data_array_value
from frost_sta_client.service.auth_handler import AuthHandler
from sta_helpers import MEASUREMENT, make_world, thing_body

from layers.store import open_store


@pytest.fixture
def svc(live):
    return fsc.SensorThingsService(
        live.url, auth_handler=AuthHandler("water", live.tokens["water"])
    )


def frost_thing(name: str = "gauge") -> fsc.Thing:
    loc = fsc.Location(
        name="bridge",
        description="on the bridge",
        encoding_type="application/geo+json",
        location={"type": "Point", "coordinates": [116.40, 39.90]},
    )
    sensor = fsc.Sensor(name="radar", description="r", encoding_type="text/html", metadata="m")
    prop = fsc.ObservedProperty(name="level", definition="http://x/level", description="lvl")
    uom = fsc.UnitOfMeasurement(name="metre", symbol="m", definition="ucum:m")
    ds = fsc.Datastream(
        name=f"{name} level",
        description="level",
        observation_type=MEASUREMENT,
        unit_of_measurement=uom,
        sensor=sensor,
        observed_property=prop,
    )
    return fsc.Thing(name=name, description="a gauge", locations=[loc], datastreams=[ds])


def test_frost_client_round_trip(live, svc) -> None:
    thing = frost_thing()
    svc.create(thing)
    assert isinstance(thing.id, int)
    found = svc.things().find(thing.id)
    assert found.name == "gauge" and found.description == "a gauge"
    streams = list(svc.datastreams().query().filter("name eq 'gauge level'").list())
    assert len(streams) == 1
    ds = streams[0]
    assert ds.unit_of_measurement.symbol == "m"
    # one observation, then a dataArray batch
    obs = fsc.Observation(result=3.5, phenomenon_time="2024-01-01T00:00:00Z", datastream=ds)
    svc.create(obs)
    assert isinstance(obs.id, int)
    dav = data_array_value.DataArrayValue()
    dav.datastream = ds
    dav.components = {
        data_array_value.DataArrayValue.Property.PHENOMENON_TIME,
        data_array_value.DataArrayValue.Property.RESULT,
    }
    for i in range(5):
        dav.add_observation(
            fsc.Observation(
                result=float(i), phenomenon_time=f"2024-01-01T01:0{i}:00Z", datastream=ds
            )
        )
    doc = data_array_document.DataArrayDocument()
    doc.add_data_array_value(dav)
    made = svc.observations().create(doc)
    assert len(made) == 5 and all("/Observations(" in m.self_link for m in made)
    # filter, order, paging through @iot.nextLink (the client follows it)
    big = list(
        svc.observations().query().filter("result ge 1 and phenomenonTime ge 2024-01-01T01:00:00Z")
        .orderby("result", "DESC").top(2).list()
    )  # fmt: skip
    assert [o.result for o in big] == [4.0, 3.0, 2.0, 1.0]
    first_page = svc.observations().query().top(2).count().list()
    assert first_page.count == 6 and first_page.next_link is not None
    # expand from the client
    things = (
        svc.things()
        .query()
        .expand("Datastreams($expand=Observations($top=1;$orderby=phenomenonTime desc)),Locations")
        .list()
    )
    t = next(iter(things))
    assert t.locations.entities[0].name == "bridge"
    newest = t.datastreams.entities[0].observations.entities
    assert [o.result for o in newest] == [4.0]
    # patch (JSON Patch) and delete
    svc.patch(found, [{"op": "replace", "path": "/name", "value": "gauge 2"}])
    assert svc.things().find(thing.id).name == "gauge 2"
    svc.delete(found)
    with pytest.raises(requests.HTTPError):
        svc.things().find(thing.id)
    assert requests.get(f"{live.url}/Observations?$count=true").json()["@iot.count"] == 0


def test_data_array_bad_rows_do_not_sink_good_ones(live) -> None:
    w = make_world(live.url, "water", live.tokens["water"])
    p = make_world(live.url, "police", live.tokens["police"])
    body = [
        {
            "Datastream": {"@iot.id": w["datastream"]},
            "components": ["phenomenonTime", "result"],
            "dataArray": [
                ["2024-02-01T00:00:00Z", 1.0],
                ["2024-02-01T00:01:00Z", "high"],  # wrong type
                ["2024-02-01T00:02:00Z", float("nan")],  # NaN
                ["2999-01-01T00:00:00Z", 2.0],  # far future
                ["not a time", 2.0],
                ["2024-02-01T00:03:00Z", 3.0],
                ["2024-02-01T00:00:00Z", 1.0],  # duplicate of the first
            ],
        },
        {"Datastream": {"@iot.id": 999}, "components": ["result"], "dataArray": [[1.0]]},
        {"Datastream": {"@iot.id": p["datastream"]}, "components": ["result"],
         "dataArray": [[1.0]]},
    ]  # fmt: skip
    import json

    r = requests.post(
        f"{live.url}/CreateObservations",
        data=json.dumps(body),  # NaN as JSON's NaN token, as some devices send
        headers={"Content-Type": "application/json"},
        auth=("water", live.tokens["water"]),
    )
    assert r.status_code == 201, r.text
    out = r.json()
    ok = [o for o in out if o.startswith("http")]
    assert len(ok) == 3 and out[0] == out[6]  # the duplicate points at the stored one
    assert "wrong result type" in out[1]
    assert "NaN" in out[2]
    assert "future" in out[3]
    assert "date-time" in out[4]
    assert "unknown datastream" in out[7]
    assert "belongs to department 'police'" in out[8]
    obs = requests.get(f"{live.url}/Datastreams({w['datastream']})/Observations?$count=true")
    assert obs.json()["@iot.count"] == 3  # 1 from make_world + 2 valid
    st = open_store(live.store_url)
    counts = st.rejection_counts()
    st.close()
    assert counts["wrong result type"] == 1 and counts["not finite"] == 1
    assert counts["far future"] == 1 and counts["other department"] == 1
    assert counts["unknown datastream"] == 1


def test_read_entity_navigation_property_value(live) -> None:
    w = make_world(live.url, "water", live.tokens["water"])
    u = live.url
    thing = requests.get(f"{u}/Things({w['thing']})").json()
    assert thing["@iot.selfLink"] == f"{u}/Things({w['thing']})"
    assert thing["Datastreams@iot.navigationLink"] == f"{u}/Things({w['thing']})/Datastreams"
    assert thing["properties"] == {"district": "东城"}
    assert requests.get(f"{u}/Things({w['thing']})/name").json() == {"name": "water gauge"}
    assert requests.get(f"{u}/Things({w['thing']})/name/$value").text == "water gauge"
    ds = requests.get(f"{u}/Observations({w['observation']})/Datastream/Thing").json()
    assert ds["@iot.id"] == w["thing"]
    hl = requests.get(f"{u}/Things({w['thing']})/HistoricalLocations?$expand=Locations").json()
    assert hl["value"][0]["Locations"][0]["@iot.id"] == w["location"]
    refs = requests.get(f"{u}/Things({w['thing']})/Datastreams/$ref").json()
    assert refs["value"] == [{"@iot.selfLink": f"{u}/Datastreams({w['datastream']})"}]
    assert requests.get(f"{u}/Things(999)").status_code == 404
    assert requests.get(f"{u}/Nothing").status_code == 404
    root = requests.get(u).json()
    assert {v["name"] for v in root["value"]} >= {"Things", "Observations", "FeaturesOfInterest"}
    # the Datastream's observation came with a FeatureOfInterest from the Thing's Location
    foi = requests.get(f"{u}/Observations({w['observation']})/FeatureOfInterest").json()
    assert foi["feature"]["coordinates"] == [116.4, 39.9]


def test_expand_select_count_and_next_links(live) -> None:
    tok = ("water", live.tokens["water"])
    for i in range(3):
        requests.post(f"{live.url}/Things", json=thing_body(f"g{i}"), auth=tok).raise_for_status()
    ds = requests.get(f"{live.url}/Datastreams?$top=1").json()["value"][0]["@iot.id"]
    body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
             "dataArray": [[f"2024-03-01T00:0{i}:00Z", float(i)] for i in range(5)]}]  # fmt: skip
    requests.post(f"{live.url}/CreateObservations", json=body, auth=tok).raise_for_status()
    r = requests.get(
        f"{live.url}/Things",
        params={
            "$select": "name,id",
            "$orderby": "name desc",
            "$top": "2",
            "$count": "true",
            "$expand": "Datastreams($select=name;$expand=Observations($top=2;"
            "$orderby=phenomenonTime desc;$select=result;$count=true))",
        },
    ).json()
    assert r["@iot.count"] == 3
    assert [t["name"] for t in r["value"]] == ["g2", "g1"]
    assert set(r["value"][0]) == {"@iot.id", "name", "Datastreams"}
    nxt = r["@iot.nextLink"]
    assert "%24skip=2" in nxt or "$skip=2" in nxt
    assert [t["name"] for t in requests.get(nxt).json()["value"]] == ["g0"]
    g0 = requests.get(nxt).json()
    assert "@iot.nextLink" not in g0
    with_obs = [d for t in r["value"] for d in t["Datastreams"] if d.get("Observations")]
    for d in r["value"][0]["Datastreams"] + r["value"][1]["Datastreams"]:
        assert set(d) <= {"name", "Observations", "Observations@iot.count",
                          "Observations@iot.nextLink"}  # fmt: skip
    assert not with_obs  # observations went to g0's datastream (id 1)
    r = requests.get(
        f"{live.url}/Datastreams({ds})",
        params={"$expand": "Observations($top=2;$orderby=result desc;$count=true)"},
    ).json()
    assert [o["result"] for o in r["Observations"]] == [4.0, 3.0]
    assert r["Observations@iot.count"] == 5
    assert "Observations@iot.nextLink" in r
    assert requests.get(r["Observations@iot.nextLink"]).json()["value"][0]["result"] == 2.0
    slash = requests.get(f"{live.url}/Things?$expand=Datastreams/Sensor&$top=1").json()
    assert slash["value"][0]["Datastreams"][0]["Sensor"]["name"] == "radar"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("name eq 'a1'", ["a1"]),
        ("name ne 'a1' and not startswith(name, 'b')", ["a2"]),
        ("substringof('2', name)", ["a2", "b2"]),
        ("contains(name, 'b') or endswith(name, '1')", ["a1", "b2"]),
        ("length(name) eq 2 and toupper(name) eq 'B2'", ["b2"]),
        ("tolower(concat(name, 'X')) eq 'a1x'", ["a1"]),
        ("indexof(name, '2') eq 1 and substring(name, 1) eq '2'", ["a2", "b2"]),
        ("(id add 1) mul 2 gt 6 and id mod 2 eq 1", ["b2"]),
        ("id sub 1 eq 0 or id div 2 eq 1", ["a1", "a2"]),
        ("properties/district eq '西城'", ["b2"]),
        ("properties/floors gt 3", ["a2"]),
        # a Chinese property name: the SQLite JSON path carries it unescaped
        ("properties/名称 eq '鼓楼'", ["a1"]),
        ("properties/楼层 ge 5 and properties/名称 ne '鼓楼'", ["a2"]),
        ("geo.intersects(Locations, geography'POINT(0 0)')", None),  # collection: 400
        ("Datastreams/name eq 'x'", None),
    ],
)
def test_filters_on_things(live, expr: str, names: list[str] | None) -> None:
    tok = ("water", live.tokens["water"])
    specs = [
        ("a1", {"district": "东城", "名称": "鼓楼"}),
        ("a2", {"floors": 5, "楼层": 6, "名称": "钟楼"}),
        ("b2", {"district": "西城"}),
    ]
    for name, props in specs:
        body = {"name": name, "description": "", "properties": props}
        requests.post(f"{live.url}/Things", json=body, auth=tok).raise_for_status()
    r = requests.get(f"{live.url}/Things", params={"$filter": expr})
    if names is None:
        assert r.status_code == 400
        return
    assert r.status_code == 200, r.text
    assert sorted(t["name"] for t in r.json()["value"]) == names


def test_time_geo_and_result_filters(live) -> None:
    tok = ("water", live.tokens["water"])
    requests.post(f"{live.url}/Things", json=thing_body("east", 116.45, 39.9), auth=tok)
    requests.post(f"{live.url}/Things", json=thing_body("west", 116.20, 39.9), auth=tok)
    ds = [d["@iot.id"] for d in requests.get(f"{live.url}/Datastreams").json()["value"]]
    body = [
        {"Datastream": {"@iot.id": d}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2024-05-01T10:00:00+08:00", 1.0 + d], ["2025-01-02T03:04:05Z", 10.0]]}
        for d in ds
    ]  # fmt: skip
    requests.post(f"{live.url}/CreateObservations", json=body, auth=tok).raise_for_status()

    def count(es: str, expr: str) -> int:
        r = requests.get(f"{live.url}/{es}", params={"$filter": expr, "$count": "true"})
        assert r.status_code == 200, r.text
        return r.json()["@iot.count"]

    box = "POLYGON((116.4 39.8, 116.5 39.8, 116.5 40, 116.4 40, 116.4 39.8))"
    assert count("Locations", f"geo.intersects(location, geography'{box}')") == 1
    assert count("Locations", f"st_within(location, geography'{box}')") == 1
    assert count("Locations", "geo.distance(location, geography'POINT(116.2 39.9)') lt 0.01") == 1
    assert (
        count("Observations", f"geo.intersects(FeatureOfInterest/feature, geography'{box}')") == 2
    )
    assert count("Observations", "phenomenonTime lt 2024-05-01T02:00:01Z") == 2
    assert count("Observations", "phenomenonTime eq '2024-05-01T02:00:00Z'") == 2
    assert count("Observations", "year(phenomenonTime) eq 2025 and month(phenomenonTime) eq 1") == 2
    assert count("Observations", "day(phenomenonTime) eq 2 and hour(phenomenonTime) eq 3") == 2
    assert count("Observations", "minute(phenomenonTime) eq 4 and second(phenomenonTime) eq 5") == 2
    assert count("Observations", "phenomenonTime lt now()") == 4
    assert count("Observations", "result gt 2.5 and result lt 9") == 1
    assert count("Observations", "round(result) eq 10 and floor(result) eq ceiling(result)") == 2
    assert count("Observations", "Datastream/Thing/name eq 'east'") == 2
    assert count("Datastreams", "phenomenonTime le 2024-05-01T02:00:00Z") == 2


@pytest.mark.parametrize(
    ("expr", "position"),
    [
        ("name eq 'a' and (", 17),
        ("name eq 'a' & id eq 1", 12),
        ("name eq", 7),
        ("nosuch eq 1", None),
        ("foo(name)", 0),
        ("name eq 'x' id", 12),
        ("startswith(name)", 0),
        ("geo.intersects(location, geography'POINT(1')", None),
    ],
)
def test_filter_errors_are_400_with_position(live, expr: str, position: int | None) -> None:
    es = "Locations" if "location" in expr else "Things"
    r = requests.get(f"{live.url}/{es}", params={"$filter": expr})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    if position is not None:
        assert message.endswith(f"at position {position}"), message


def test_query_options_are_checked(live) -> None:
    u = live.url
    assert requests.get(f"{u}/Things?$top=abc").status_code == 400
    assert requests.get(f"{u}/Things?$top=-1").status_code == 400
    assert requests.get(f"{u}/Things?$bogus=1").status_code == 400
    assert requests.get(f"{u}/Things?$select=nope").status_code == 400
    assert requests.get(f"{u}/Things?$expand=Nope").status_code == 400
    assert requests.get(f"{u}/Things?$top=5000").status_code == 200  # capped at 1000


def test_locations_in_other_crs_are_stored_in_wgs84(live) -> None:
    import numpy as np

    from cim.crs import gcj02_to_wgs84

    tok = ("water", live.tokens["water"])
    # CGCS2000 / 3-degree Gauss-Krüger CM 117E: (116.4, 39.9) lies about here
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 4547, always_xy=True).transform(116.4, 39.9)
    gk = {"name": "gk", "description": "", "encodingType": "application/geo+json",
          "location": {"type": "Point", "coordinates": [x, y, 45.0],
                       "crs": {"type": "name", "properties": {"name": "EPSG:4547"}}}}  # fmt: skip
    r = requests.post(f"{live.url}/Locations", json=gk, auth=tok)
    assert r.status_code == 201, r.text
    lon, lat, h = r.json()["location"]["coordinates"]
    assert abs(lon - 116.4) < 1e-7 and abs(lat - 39.9) < 1e-7 and h == 45.0
    gcj = {"name": "gcj", "description": "", "properties": {"crs": "GCJ-02"},
           "location": {"type": "Point", "coordinates": [116.4, 39.9]}}  # fmt: skip
    r = requests.post(f"{live.url}/Locations", json=gcj, auth=tok)
    assert r.status_code == 201, r.text
    want = np.array(gcj02_to_wgs84(np.array([116.4]), np.array([39.9]))).ravel()
    assert np.allclose(r.json()["location"]["coordinates"], want, atol=1e-9)
    bad = dict(gcj, properties={"crs": "EPSG:999999"})
    assert requests.post(f"{live.url}/Locations", json=bad, auth=tok).status_code == 400


def test_writes_need_a_valid_token(live) -> None:
    u = live.url
    body = thing_body()
    assert requests.post(f"{u}/Things", json=body).status_code == 401
    r = requests.post(f"{u}/Things", json=body, auth=("water", "water.wrong"))
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = requests.post(f"{u}/Things", json=body, auth=("police", live.tokens["water"]))
    assert r.status_code == 401  # Basic user must be the token's department
    bearer = {"Authorization": f"Bearer {live.tokens['water']}"}
    assert requests.post(f"{u}/Things", json=body, headers=bearer).status_code == 201
    assert requests.get(f"{u}/Things").status_code == 200  # reads open by default


def test_token_read_mode(store_url) -> None:
    from sta_helpers import running_app

    from layers.departments import add_department

    st = open_store(store_url)
    token = add_department(st, "water", "w")
    st.close()
    with running_app(store_url, read="token") as url:
        assert requests.get(f"{url}/Things").status_code == 401
        assert requests.get(f"{url}/Things", auth=("water", token)).status_code == 200


def test_bad_bodies_are_400(live) -> None:
    tok = ("water", live.tokens["water"])
    u = live.url
    assert (
        requests.post(f"{u}/Things", json={"description": "no name"}, auth=tok).status_code == 400
    )
    assert (
        requests.post(f"{u}/Things", json={"name": "x", "colour": 1}, auth=tok).status_code == 400
    )
    body = thing_body()
    body["Datastreams"][0]["observationType"] = "nonsense"
    assert requests.post(f"{u}/Things", json=body, auth=tok).status_code == 400
    assert requests.get(f"{u}/Things?$count=true").json()["@iot.count"] == 0  # all or nothing
    body = thing_body()
    del body["Datastreams"][0]["Sensor"]
    assert requests.post(f"{u}/Things", json=body, auth=tok).status_code == 400
    assert requests.post(f"{u}/Things", data="{", auth=tok).status_code == 400
