"""The store layer: the catalog, the write lock, shard writing and the commit protocol. Knows nothing of the operations above it."""
