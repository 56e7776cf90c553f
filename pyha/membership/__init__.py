"""Membership: heartbeats on the wire, the failure detector and the coordinator election."""
