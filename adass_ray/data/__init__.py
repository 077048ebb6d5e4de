"""Data layer: feature map, raw sources, prepare, loaders."""
