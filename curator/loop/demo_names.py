"""The demo's names, shared by the demo (:mod:`curator.loop.demo`) and the report that draws it
(:mod:`curator.loop.report`): its two loops, as lineage-name suffixes, and its real sources."""

#: The two loops every modality runs (lineage suffixes): without a fresh-real floor, and with
#: `DemoConfig.floor` from generation 2 on.
LOOPS = ("no-floor", "fresh-floor")

TEXT_SOURCE = "python-docs"
DIGITS_SOURCE = "digits"
