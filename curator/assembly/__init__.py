"""Assembly: policies, the planner, pools and freshness, selection, per-shard quotas, output writing and manifests."""
