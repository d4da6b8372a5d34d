"""``ocrtune tune-postprocess``: search the postprocess settings of a trained checkpoint.

The network runs once over a split and its probability maps are cached beside the run
(``cache``); the search then re-runs only postprocess and CLEval, in stages that do each piece
of work once per value of the settings it depends on (``stages``), across cores (``pool``).
``space`` and ``search`` choose the settings, ``preset`` writes the best as a new preset,
``api`` ties it together for the CLI.
"""
