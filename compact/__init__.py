"""COMPACT: compatibility-aware multi-teacher chain-of-thought distillation."""
import os as _os

__version__ = "0.1.0"

# Under CI, papermill (COMPACT_QUIET=1) and the pipeline's workers, third-party progress bars would flood
# logs and executed notebooks; they read these variables when first imported, so set them before that.
if _os.environ.get("COMPACT_QUIET") == "1" or _os.environ.get("CI"):
    from .log import quiet_progress_bars

    quiet_progress_bars()
