"""Batch prediction over archives of scenes: input lists, resumable runs, and the Ray Data engine.

``nltool predict --engine ray`` spreads the strips of many scenes (one grid row of tiles each)
over a pool of Ray actors and blends them on the driver with the local pipeline's own code, so the
masks are byte-identical to ``--engine local``. Ray is imported only when that engine runs.
"""
