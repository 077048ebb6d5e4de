"""The evaluation harness (``adass-ray report``): which methods (:mod:`.methods`), the units of
work (:mod:`.units`), the run (:mod:`.run`), the tables (:mod:`.tables`, :mod:`.stats`) and the
outputs (:mod:`.render`)."""
