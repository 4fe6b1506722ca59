"""The OGC SensorThings API 1.1 over the live store: data model, query language
(``$filter``, ``$expand``, ``$orderby``, ``$select``, paging) and writes with
department permissions. ``server.blueprints.sta`` exposes it over HTTP.
"""
