"""``python -m gradsim.bench``: the numeric layer's benchmark (see :mod:`gradsim.bench.numeric`)."""

import sys

from .numeric import main

sys.exit(main())
