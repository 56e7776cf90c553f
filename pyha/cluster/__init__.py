"""Several cluster servers working together: reports, the coordinator cycle, the node."""
