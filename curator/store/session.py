"""A read session over a store: an in-memory DuckDB connection with the store's catalog attached
read-only as `cat`, its own temp directory and a memory limit.

Operations read the store through it without holding the catalog open for writing: assembly plans
and selects in it, `curator dedup` groups bands in it, `curator infer` reads its candidates from
it. It is the driver's: tasks run by an engine never get a session (only the driver opens the
catalog).

>>> session = CatalogSession(store, "/tmp/work/duckdb")  # doctest: +SKIP
>>> session.con.execute("SELECT count(*) FROM cat.shards").fetchall()  # doctest: +SKIP
>>> session.close()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from curator.store.base import StoreBase

#: DuckDB's memory limit in a session (it spills to the temp directory beyond it).
DUCKDB_MEMORY_LIMIT = "1GB"
#: How long to keep trying to attach a catalog that a committing writer holds for a moment.
ATTACH_WAIT_SECONDS = 60


class CatalogSession:
    """An in-memory DuckDB session with the catalog of `store` attached read-only as `cat`;
    DuckDB spills to `temp_dir`. :meth:`close` it when done."""

    def __init__(self, store: StoreBase, temp_dir: str) -> None:
        import duckdb

        self.store = store
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": temp_dir}
        )
        root = store.root.replace("'", "''")
        self.con.execute(f"SET file_search_path = '{root}'")
        self.con.execute("SET enable_progress_bar = false")  # DuckDB's bar writes to stdout
        deadline = time.monotonic() + ATTACH_WAIT_SECONDS
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
        """Let go of the catalog (the in-memory tables stay)."""
        self.con.execute("DETACH cat")

    def close(self) -> None:
        self.con.close()
