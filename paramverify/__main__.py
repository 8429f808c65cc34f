import sys

from paramverify.cli import main

sys.exit(main())
