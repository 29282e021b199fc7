"""The pure core: the fold from events to entity states and view deltas, the in-memory views, the fold engines.

No I/O.
"""
