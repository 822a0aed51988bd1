"""Lab plans shipped with cotenant: ``bundled.yaml`` (the bundled dataset), ``smoke.yaml`` (smoke test).

A package only so that the YAML files are installed with it (package data).
"""
