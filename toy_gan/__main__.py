"""``python -m toy_gan`` is the anomaly detector (``python -m toy_gan.anomaly``)."""

import sys

from toy_gan.anomaly import main

sys.exit(main())
