"""The batch queue: comparisons to generate (jobs) and the persona reviews they need (tasks).

db.py holds every SQL statement of the queue; pairs.py reads `queue add` files; runner.py drains
the queue with live calls; batch.py sends pending reviews as provider batches.
"""
