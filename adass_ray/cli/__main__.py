"""``python -m adass_ray.cli``: the same as the ``adass-ray`` command."""

import sys

from adass_ray.cli import main

sys.exit(main())
