import sys

from coseg.cli import main

sys.exit(main())
