"""Action codecs: how each source's raw actions map onto the store's action arrays."""
