import sys

from striate.cli.main import main

sys.exit(main())
