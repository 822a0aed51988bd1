"""``python -m cotenant``: the ``cotenant`` command (``cotenant.entry``)."""

from cotenant.entry import main

main()
