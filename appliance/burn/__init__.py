"""Burn pipeline: one job per target — write while hashing, verify by read-back, eject, result."""

from appliance.burn.job import (
    BurnJob,
    JobEvent,
    JobProgress,
    JobResult,
    JobStateChanged,
    burn_many,
)

__all__ = ["BurnJob", "JobEvent", "JobProgress", "JobResult", "JobStateChanged", "burn_many"]
