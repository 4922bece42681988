"""cnnkit: the helpers every notebook of the CNN module shares, one module per concern.

Device and seeding, data sets (the real torchvision loaders, with offline
fixtures written in the real on-disk formats), plotting, and the small checks
used by the visible test cells. It ships in every release folder; notebooks
import it as ``import cnnkit``.

Environment switches:
- ``CNNKIT_SMOKE=1``: smoke mode, tiny data and a few steps (what CI runs).
- ``CNNKIT_DOWNLOAD=1``: download the real data sets when they are missing.
- ``CNNKIT_DATA=DIR``: where data sets live (default ``./data``).
"""

from __future__ import annotations

from .challenge import *  # noqa: F403
from .checks import *  # noqa: F403
from .cifar import *  # noqa: F403
from .env import *  # noqa: F403
from .models import *  # noqa: F403
from .plots import *  # noqa: F403
from .segtrain import *  # noqa: F403
from .sequences import *  # noqa: F403
from .style import *  # noqa: F403
from .voc import *  # noqa: F403
