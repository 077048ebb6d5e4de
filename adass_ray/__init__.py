"""adass_ray: per-feature embedding-size search (AdaS&S) on Ray, tracked in MLflow."""

from adass_ray.errors import AdassError

__all__ = ["AdassError", "__version__"]
__version__ = "0.1.0"
