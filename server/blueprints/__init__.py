"""One blueprint per resource: output files, the viewer, the JSON API, address search."""
