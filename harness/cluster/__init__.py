"""Cluster providers: where the nodes under test come from.

`local`: network-namespace nodes on this machine (needs root). Remote SSH hosts need no provider
object; they are just `NodeSpec`s handed to `harness.remote.connect_all`.
"""

from harness.cluster.local import DEFAULT_STATE_DIR, DEFAULT_SUBNET, NEED_ROOT, LocalCluster
from harness.cluster.netns import ClusterError

__all__ = ["LocalCluster", "ClusterError", "DEFAULT_STATE_DIR", "DEFAULT_SUBNET", "NEED_ROOT"]
