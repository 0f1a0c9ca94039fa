"""Detection: findings (one per suspicious inbound recipient), probes, incidents, inference.

Detectors are functions over Polars frames; their metadata (rules, probe signatures) is data, in
explicit registries (:mod:`logforensics.detect.rules`, :mod:`logforensics.detect.probes`).
"""
