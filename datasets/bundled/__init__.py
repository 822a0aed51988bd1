"""The packed bundled dataset lives here (``cotenant datasets pack LAB_DIR --out datasets/bundled``).

A package only so that installs that are not editable ship its Parquet files and CARD.md as package data.
"""
