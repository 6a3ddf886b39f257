"""The domain layer: what every core agrees on, with no I/O (DESIGN.md §9).

`instrument` (InstrumentId, Instrument and its order rules), `position` (the one fill → position
fold), `ids` (the deterministic id recipes). Imports nothing from services.* but itself, and
schemas; every core may import it. Import the submodules directly: this package imports none of
them, so `schemas` and the submodules never meet in an import cycle.
"""
