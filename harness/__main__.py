import os
import sys

# Waiting OpenMP threads sleep instead of spinning (see harness/training/threads.py); read once, when
# torch loads its OpenMP runtime, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.cli import main  # noqa: E402

try:
    sys.exit(main())
except BrokenPipeError:  # `harness list | head`: the reader left; stop quietly, as Unix tools do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a tool stopped this way
