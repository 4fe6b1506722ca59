"""Live and departmental data placed on the city: sensors (OGC SensorThings API 1.1),
departments and their tokens, and the store behind them (SQLite or PostgreSQL/PostGIS).

``layers`` imports the core (``cim``) and never ``server`` or ``tiling``.
"""
