"""Data: nuScenes-format reading and writing, language labels, caching, the Lightning DataModule."""
