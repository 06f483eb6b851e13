# SPDX-License-Identifier: GPL-2.0-or-later
"""hanat's e2e lab (issue 8): see tests/e2e/README.md.

    import sys; sys.path.insert(0, "<repo>/tests/e2e")
    from hanatlab import Lab
    with Lab(nats=2, masquerade=True, forwarding=True) as lab:
        ...
"""

from hanatlab.lab import Lab, LabUnavailable, Stream, leftovers, prerequisites, teardown_state
from hanatlab.netns import LabError, in_netns
from hanatlab.traffic import analyse

__all__ = ["Lab", "LabError", "LabUnavailable", "Stream", "analyse", "in_netns", "leftovers",
           "prerequisites", "teardown_state"]
