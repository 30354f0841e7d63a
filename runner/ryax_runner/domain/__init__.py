"""The runner's domain: deployments, sites, placement, runs, executions (stdlib only)."""
