"""``python -m logforensics``."""

from logforensics.cli import main

main()
