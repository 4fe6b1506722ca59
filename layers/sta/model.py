"""The OGC SensorThings API 1.1 data model mapped onto the store's tables.

Each entity set names its table, its properties (API name → column and kind) and its
navigation properties (to-one by a foreign key here; to-many by a foreign key there or
through a link table). The query compiler, the reader and the writer all work from
these tables, so the mapping lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: property kinds: how a column is read, written and compared
INT, STR, JSON, TIME, INTERVAL, GEO, RESULT = (
    "int",
    "str",
    "json",
    "time",
    "interval",
    "geo",
    "result",
)


@dataclass(frozen=True)
class Prop:
    """One property: its column (for intervals the start column; ``end`` the end column)."""

    column: str
    kind: str = STR
    end: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Nav:
    """A navigation property.

    ``fk`` on this table (to-one), or ``remote_fk`` on the target table (to-many), or a
    ``link`` table with ``link_here``/``link_there`` columns (to-many).
    """

    target: str
    fk: str | None = None
    remote_fk: str | None = None
    link: str | None = None
    link_here: str | None = None
    link_there: str | None = None

    @property
    def to_one(self) -> bool:
        """Whether the navigation leads to a single entity."""
        return self.fk is not None


@dataclass(frozen=True)
class EntitySet:
    """An entity set of the SensorThings API."""

    name: str
    singular: str
    table: str
    props: dict[str, Prop]
    navs: dict[str, Nav] = field(default_factory=dict)


def _common(*, definition: bool = False) -> dict[str, Prop]:
    props = {
        "id": Prop("id", INT),
        "name": Prop("name", STR, required=True),
        "description": Prop("description", STR),
    }
    if definition:
        props["definition"] = Prop("definition", STR)
    props["properties"] = Prop("properties", JSON)
    return props


ENTITY_SETS: dict[str, EntitySet] = {
    "Things": EntitySet(
        "Things",
        "Thing",
        "things",
        _common(),
        {
            "Locations": Nav(
                "Locations", link="thing_locations", link_here="thing_id", link_there="location_id"
            ),
            "HistoricalLocations": Nav("HistoricalLocations", remote_fk="thing_id"),
            "Datastreams": Nav("Datastreams", remote_fk="thing_id"),
        },
    ),
    "Locations": EntitySet(
        "Locations",
        "Location",
        "locations",
        {
            **_common(),
            "encodingType": Prop("encoding_type", STR),
            "location": Prop("location", GEO, required=True),
        },
        {
            "Things": Nav(
                "Things", link="thing_locations", link_here="location_id", link_there="thing_id"
            ),
            "HistoricalLocations": Nav(
                "HistoricalLocations",
                link="location_historical_locations",
                link_here="location_id",
                link_there="historical_location_id",
            ),
        },
    ),
    "HistoricalLocations": EntitySet(
        "HistoricalLocations",
        "HistoricalLocation",
        "historical_locations",
        {"id": Prop("id", INT), "time": Prop("time", TIME, required=True)},
        {
            "Thing": Nav("Things", fk="thing_id"),
            "Locations": Nav(
                "Locations",
                link="location_historical_locations",
                link_here="historical_location_id",
                link_there="location_id",
            ),
        },
    ),
    "Sensors": EntitySet(
        "Sensors",
        "Sensor",
        "sensors",
        {
            **_common(),
            "encodingType": Prop("encoding_type", STR),
            "metadata": Prop("metadata", JSON),
        },
        {"Datastreams": Nav("Datastreams", remote_fk="sensor_id")},
    ),
    "ObservedProperties": EntitySet(
        "ObservedProperties",
        "ObservedProperty",
        "observed_properties",
        _common(definition=True),
        {"Datastreams": Nav("Datastreams", remote_fk="observed_property_id")},
    ),
    "Datastreams": EntitySet(
        "Datastreams",
        "Datastream",
        "datastreams",
        {
            **_common(),
            "unitOfMeasurement": Prop("unit_of_measurement", JSON, required=True),
            "observationType": Prop("observation_type", STR, required=True),
            "observedArea": Prop("observed_area", JSON),
            "phenomenonTime": Prop("phenomenon_time_start", INTERVAL, end="phenomenon_time_end"),
            "resultTime": Prop("result_time_start", INTERVAL, end="result_time_end"),
        },
        {
            "Thing": Nav("Things", fk="thing_id"),
            "Sensor": Nav("Sensors", fk="sensor_id"),
            "ObservedProperty": Nav("ObservedProperties", fk="observed_property_id"),
            "Observations": Nav("Observations", remote_fk="datastream_id"),
        },
    ),
    "Observations": EntitySet(
        "Observations",
        "Observation",
        "observations",
        {
            "id": Prop("id", INT),
            "phenomenonTime": Prop("phenomenon_time", TIME, end="phenomenon_time_end"),
            "resultTime": Prop("result_time", TIME),
            "result": Prop("result", RESULT, required=True),
            "resultQuality": Prop("result_quality", JSON),
            "validTime": Prop("valid_time_start", INTERVAL, end="valid_time_end"),
            "parameters": Prop("parameters", JSON),
        },
        {
            "Datastream": Nav("Datastreams", fk="datastream_id"),
            "FeatureOfInterest": Nav("FeaturesOfInterest", fk="foi_id"),
        },
    ),
    "FeaturesOfInterest": EntitySet(
        "FeaturesOfInterest",
        "FeatureOfInterest",
        "features_of_interest",
        {
            **_common(),
            "encodingType": Prop("encoding_type", STR),
            "feature": Prop("feature", GEO, required=True),
        },
        {"Observations": Nav("Observations", remote_fk="foi_id")},
    ),
}

#: singular name (as used in request bodies) → entity set name
BY_SINGULAR = {es.singular: es.name for es in ENTITY_SETS.values()}

#: the observation types of the standard and the JSON results they take
OBSERVATION_TYPES = {
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement": "number",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation": "integer",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation": "boolean",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation": "string",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation": "any",
}
