import sys

from opencrop.cli import main

sys.exit(main())
