"""City events: the 城市运行 case lifecycle (GB/T 30428), its time limits and Open311.

- :mod:`layers.events.categories`: the 部件/事件 category table with time limits.
- :mod:`layers.events.lifecycle`: states, roles and the transition table.
- :mod:`layers.events.worktime`: working hours, Chinese holidays, stage clocks.
- :mod:`layers.events.model`: a case and the pure step that moves it.
- :mod:`layers.events.sensors`: sensor alarms open cases.
- :mod:`layers.events.open311`: GeoReport v2 mapping and validation.
- :mod:`layers.events.config`: the ``[events]`` section of city.toml.
- :mod:`layers.events.attachments`: accepted attachment types, sizes and names.
- :mod:`layers.events.schema`, :mod:`layers.events.store`: the tables and the store API.
"""
