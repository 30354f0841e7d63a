"""The `slurm` site backend: each execution is a Slurm batch job running the action wrapper once
(`--once`), in its sandbox, on a directory the login node and the compute nodes share."""
