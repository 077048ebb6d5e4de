"""One recipe per pipeline arrow, shared by the CLI, the jobs and the tests.

Each recipe checks its input on the driver, starts or joins Ray, opens its MLflow run as a
context manager and leaves its outputs in one folder:

* :mod:`~adass_ray.stages.train`: ``train`` (supernet or one fixed model) and ``retrain``;
* :mod:`~adass_ray.stages.search`: ``search`` and ``stability``;
* :mod:`~adass_ray.stages.sweep`: ``sweep`` (Ray Tune over λ × budget);
* :mod:`~adass_ray.stages.pipeline`: ``run``, all of them in order (the demo);
* :mod:`~adass_ray.stages.smoke`: every ``--smoke-test`` / ``--quick`` preset.

Import a recipe from its module (``from adass_ray.stages.search import search``); this package
imports nothing heavy, so the CLI can read the presets cheaply.
"""
