"""MLflow's model registry for WMS: versions, aliases, the champion's history and the promotion gates."""
