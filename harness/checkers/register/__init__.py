"""Checking the register workload: linearizability (direct analysis on unique values and
zxids, search otherwise), ZooKeeper's model, and the Stat checks."""

from .checker import RegisterChecker, check_register, missing_final_reads

__all__ = ["RegisterChecker", "check_register", "missing_final_reads"]
