import os
import sys

# Waiting OpenMP threads sleep instead of spinning (see harness/threads.py); read once, when
# torch loads its OpenMP runtime, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.cli import main  # noqa: E402

sys.exit(main())
