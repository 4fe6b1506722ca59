"""The pipelines stage: underground pipe surveys → 3D Tiles and a network file."""
