"""``python -m compact.trainer`` (also under ``torchrun -m`` and ``accelerate launch -m``): the ``compact train`` entry point."""
import sys

from .run import main

sys.exit(main())
