"""Buildings: footprints → repaired :class:`cim.model.Buildings` → L2 3D Tiles."""
