"""The DuckDB session an assembly plans and selects in: in memory, with the store's catalog
attached read-only as `cat` (also used by `curator dedup` and `curator infer` to read the store
without holding the catalog open for writing)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from curator.api import Store

DUCKDB_MEMORY_LIMIT = "1GB"


class _Session:
    """An in-memory DuckDB session with the catalog attached read-only."""

    def __init__(self, store: Store, temp_dir: str) -> None:
        import duckdb

        self.store = store
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": temp_dir}
        )
        root = store.root.replace("'", "''")
        self.con.execute(f"SET file_search_path = '{root}'")
        self.con.execute("SET enable_progress_bar = false")  # DuckDB's bar writes to stdout
        deadline = time.monotonic() + 60
        while True:
            try:
                self.con.execute(
                    f"ATTACH '{store.catalog_path.replace(chr(39), chr(39) * 2)}' AS cat (READ_ONLY)"
                )
                break
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def detach(self) -> None:
        self.con.execute("DETACH cat")

    def close(self) -> None:
        self.con.close()
