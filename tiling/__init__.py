"""Build stages: buildings (L2, L3), glTF/3D Tiles writers, terrain, imagery, addresses.

``tiling`` never imports ``layers`` or ``server``.
"""
